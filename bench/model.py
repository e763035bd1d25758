"""What the benchmark is made of: a server (its commands), a scenario, one measured run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Server:
    cmd: str
    ws: bool = True  # also measured on websocket echo
    only: tuple = ()  # scenarios this server can run (empty: all)
    note: str = ""
    h2: str = ""  # the command for the HTTP/2 scenarios (bench/h2.py); empty: no HTTP/2


@dataclass
class Scenario:
    name: str
    kind: str = "wrk"  # wrk | ws | idle | h2
    path: str = "/"
    conns: int = 64
    depth: int = 1  # wrk: requests per write (pipelining); h2: concurrent streams per connection
    method: str = "GET"
    body: int = 0
    short: bool = False
    title: str = ""


@dataclass
class Run:
    round: int
    server: str
    scenario: str
    ok: bool = True
    rps: float = 0.0
    p50_ms: float = 0.0  # h2: h2load's mean time per request (it reports no percentiles)
    p99_ms: float = 0.0
    errors: int = 0
    cpu_us: float = 0.0  # server process tree CPU per request / message
    core0: float = 0.0
    core1: float = 0.0
    rss_mib: float = 0.0  # peak RSS (VmHWM) of the busiest server process
    kib_per_conn: float = 0.0
    alive: int = 0
    error: str = ""
    extra: dict = field(default_factory=dict)
