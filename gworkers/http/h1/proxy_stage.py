"""The PROXY protocol stage: what a connection reads before its first HTTP byte.

With ``proxy_protocol`` on, the HTTP connection's parser is first this stage (it has the parser's
``feed`` and ``in_head``). It reads the PROXY header, puts what it says into the connection (the
client and server addresses the scope will carry, https when v2 says the client spoke TLS to the
proxy, and the proxy-header trust of that client), then hands the parser back to the connection
with the bytes that followed the header (``proxy_header_read``: the HTTP parser gets them, or,
where HTTP/2 may be spoken, they decide the protocol first). With the setting off no stage exists: the
connection pays nothing for it.

Who must send a header is decided per connection, from the real peer address:

* a peer in ``proxy_allow_ips`` (or a unix-socket peer, which has no address: Gunicorn allows
  those unconditionally) must start with a valid header of an accepted version. A missing or
  malformed one closes the connection without an HTTP answer: the bytes are not HTTP, and the
  specification forbids guessing whether a header is present;
* any other peer may not send one: bytes that start like a header close the connection; other
  bytes go to the HTTP parser unchanged.

A pending header counts as silence for the connection's timers (``in_head`` is False), so a
proxy that never completes it is closed at ``timeout_request_header`` without a 408.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ...proxy_protocol import HeaderReader, ProxyHeader, ProxyProtocolError, looks_like_header


class ProxyGate:
    """Built once per worker when ``proxy_protocol`` is on: the accepted versions, the peers that
    must send a header, and the log (one warning per kind of refusal, then debug lines)."""

    def __init__(self, config: Any, log: Any) -> None:
        mode = config.proxy_protocol
        self.v1 = mode in ("v1", "auto")
        self.v2 = mode in ("v2", "auto")
        self.mode = mode
        allow = config.proxy_allow_ips
        self.everyone = "*" in allow
        self.networks = tuple(
            ipaddress.ip_network(item, strict=False)
            for item in allow
            if item != "*" and not item.startswith("unix:")
        )
        self.log = log
        self.warned: set[str] = set()

    def allows(self, peer: tuple | None) -> bool:
        """Whether this peer (``None``: a unix-socket peer) must send a PROXY header."""
        if peer is None or self.everyone:
            return True
        try:
            addr = ipaddress.ip_address(peer[0].split("%", 1)[0])
        except ValueError:
            return False
        mapped = getattr(addr, "ipv4_mapped", None)
        return any(addr in net or mapped is not None and mapped in net for net in self.networks)

    def stage(self, conn: Any, parser: Any) -> HeaderStage:
        return HeaderStage(self, conn, parser, self.allows(conn.client))

    def refused(self, conn: Any, kind: str, reason: str) -> None:
        peer = conn.transport.get_extra_info("peername") if conn.transport is not None else None
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a unix-socket peer"
        if kind == "forbidden":
            why = f"{reason}, from a peer not in proxy_allow_ips"
        else:
            why = (f"{reason} (proxy_protocol = {self.mode}: every connection from "
                   "proxy_allow_ips must start with one)")
        if kind in self.warned:
            self.log.debug("gworkers: PROXY protocol: closed a connection from %s: %s", where, why)
        else:
            self.warned.add(kind)
            self.log.warning("gworkers: PROXY protocol: closed a connection from %s: %s; "
                             "further ones are logged at debug level", where, why)


class HeaderStage:
    """One connection's first bytes; stands in for the HTTP parser until the header is read."""

    __slots__ = ("buffer", "conn", "gate", "parser", "reader")

    in_head = False  # a pending header is silence to the connection's timers (no 408)

    def __init__(self, gate: ProxyGate, conn: Any, parser: Any, must_send: bool) -> None:
        self.gate = gate
        self.conn = conn
        self.parser = parser
        self.reader = HeaderReader(gate.v1, gate.v2) if must_send else None
        self.buffer = b""  # what a peer that may not send a header sent, until it is clear

    def feed(self, data: bytes) -> None:
        conn = self.conn
        if conn.closing or conn.closed:
            return
        reader = self.reader
        if reader is not None:
            try:
                header = reader.feed(data)
            except ProxyProtocolError as exc:
                self.refuse("malformed", str(exc))
                return
            if header is None:
                return
            rest = reader.rest
            self.apply(header)
        else:
            rest = self.buffer + data if self.buffer else data
            seen = looks_like_header(rest)
            if seen is None:
                self.buffer = rest
                return
            if seen:
                self.refuse("forbidden", "it sent a PROXY protocol header")
                return
        conn.parser = self.parser
        conn.proxy_header_read(rest)

    def apply(self, header: ProxyHeader) -> None:
        """The addresses the proxy saw become the connection's (LOCAL/UNKNOWN: kept as they are)."""
        if header.local:
            return
        conn = self.conn
        # a unix-socket client has no address, as when it connects here directly
        conn.client = None if header.family == "UNIX" else header.client
        conn.sockname = header.server
        if header.tls:
            conn.scheme = "https"
        # the proxy vouches that what follows comes from this client: its headers are judged
        # by the client's address, not by the proxy's
        conn.trusted = conn.context.proxy.trusts(conn.client)

    def refuse(self, kind: str, reason: str) -> None:
        self.reader = None
        self.buffer = b""
        self.gate.refused(self.conn, kind, reason)
        self.conn.close()
