"""Write flow control shared by the HTTP connection and the WebSocket session.

The transport calls ``pause_writing``/``resume_writing`` around its high-water mark; a protocol
that must not buffer without bound awaits ``drain_waiter`` while paused. Whoever resolves a
waiter first (resume, or the connection being lost) wins; the other finds it done.
"""

from __future__ import annotations

import asyncio
from typing import Any


def wake(waiter: asyncio.Future | None) -> None:
    """Resolve a waiter unless it is already resolved (or cancelled)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class WriteFlow:
    """``asyncio.Protocol`` write flow control: a flag and one waiter, no per-write cost."""

    __slots__ = ()  # a subclass may keep its attributes in slots

    write_paused = False
    drain_waiter: asyncio.Future | None = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter, self.drain_waiter = self.drain_waiter, None
        wake(waiter)

    async def wait_writable(self) -> None:
        """Wait while the transport is over its high-water mark (not once the connection is
        gone: ``release_drain`` wakes whoever waits then). The subclass has ``closed`` and
        ``loop``."""
        if self.write_paused and not self.closed:
            waiter = self.drain_waiter
            if waiter is None:
                waiter = self.drain_waiter = self.loop.create_future()
            await waiter

    def release_drain(self) -> None:
        """The connection is gone: nobody waits for a resume that will never come."""
        waiter, self.drain_waiter = self.drain_waiter, None
        wake(waiter)


def transport_addresses(transport: Any) -> tuple[tuple | None, tuple | None, bool]:
    """``(client, server, tls)`` for the ASGI scope, from what the transport knows: the
    peer's (host, port) or None (a unix socket), our (host, port) or (path, None), and
    whether TLS runs on it."""
    peer = transport.get_extra_info("peername")
    sock = transport.get_extra_info("sockname")
    client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
    if isinstance(sock, tuple):
        server = (sock[0], sock[1])
    elif isinstance(sock, str) and sock:
        server = (sock, None)
    else:
        server = None
    return client, server, transport.get_extra_info("sslcontext") is not None
