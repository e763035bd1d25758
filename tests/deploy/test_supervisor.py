"""deploy/supervisor: supervisord really started on the shipped snippets.

The fcgi-program form: supervisord owns the TCP socket and hands it to two Gunicorn masters as
fd 0; restarting them one at a time (and HUP) never refuses a connection. The plain [program]
form: Gunicorn binds its own unix socket.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tests.conftest import wait_until
from tests.deploy.supervisor_stack import Supervisor
from tests.deploy.support import connects, request, short_dir


@pytest.fixture
def supervisor(tmp_path, request):
    with short_dir() as d:
        sup = Supervisor(tmp_path, d, request.param)
        try:
            yield sup
        finally:
            sup.stop()


class Hammer:
    """Requests in a loop on fresh connections, counting every failure, while a test acts."""

    def __init__(self, address) -> None:
        self.address = address
        self.ok = 0
        self.errors: list[str] = []
        self.pids: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = request(self.address, "/pid", timeout=30)
                if r.status != 200:
                    self.errors.append(f"status {r.status}")
                self.pids.add(r.body)
                self.ok += 1
            except OSError as exc:
                self.errors.append(repr(exc))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def serving(sup: Supervisor, address, processes: int) -> None:
    sup.proc.wait_for(lambda: sup.ctl("status").count("RUNNING") == processes,
                      f"{processes} RUNNING processes")
    sup.proc.wait_for(lambda: connects(address), "a listening socket")
    assert request(address, "/").json()["type"] == "http"


@pytest.mark.parametrize("supervisor", ["gworkers-fcgi.conf"], indirect=True)
def test_fcgi_program_owns_the_socket(supervisor):
    address = ("127.0.0.1", supervisor.port)
    assert "--bind fd://0" in supervisor.text
    serving(supervisor, address, processes=2)

    # a killed worker is replaced by its Gunicorn master
    victim = wait_until(lambda: supervisor.worker_pids(), message="worker pids")[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in supervisor.worker_pids()
               and len(supervisor.worker_pids()) >= 4, message="replacement worker")
    assert request(address, "/").status == 200

    # rolling restart, then a graceful reload: not one connection refused or dropped
    hammer = Hammer(address)
    try:
        wait_until(lambda: hammer.ok >= 5, message="requests flowing")
        for name in ("gworkers:gworkers_0", "gworkers:gworkers_1"):
            out = supervisor.ctl("restart", name)
            assert "started" in out, out
        out = supervisor.ctl("signal", "HUP", "gworkers:*")
        assert "signalled" in out, out
        before = hammer.ok
        wait_until(lambda: hammer.ok >= before + 20, message="requests after the restarts")
    finally:
        hammer.stop()
    assert hammer.errors == []
    assert supervisor.ctl("status").count("RUNNING") == 2


@pytest.mark.parametrize("supervisor", ["gworkers-program.conf"], indirect=True)
def test_plain_program(supervisor):
    address = supervisor.unix_bind
    serving(supervisor, address, processes=1)
    victim = wait_until(lambda: supervisor.worker_pids(), message="worker pids")[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in supervisor.worker_pids()
               and len(supervisor.worker_pids()) >= 2, message="replacement worker")
    assert request(address, "/").status == 200
    # supervisord restarts the whole master when it dies
    out = supervisor.ctl("restart", "gworkers")
    assert "started" in out, out
    serving(supervisor, address, processes=1)
    out = supervisor.ctl("stop", "gworkers")
    assert "stopped" in out, out
    assert not connects(address)
