"""Write flow control shared by the HTTP connection and the WebSocket session.

The transport calls ``pause_writing``/``resume_writing`` around its high-water mark; a protocol
that must not buffer without bound awaits ``drain_waiter`` while paused. Whoever resolves a
waiter first (resume, or the connection being lost) wins; the other finds it done.
"""

from __future__ import annotations

import asyncio


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

    def release_drain(self) -> None:
        """The connection is gone: nobody waits for a resume that will never come."""
        waiter, self.drain_waiter = self.drain_waiter, None
        wake(waiter)
