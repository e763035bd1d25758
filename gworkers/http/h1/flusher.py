"""Deferred writes: each connection's bytes leave at the end of the loop iteration."""

from __future__ import annotations

import asyncio
from typing import Any


class Flusher:
    """Defers each connection's writes to the end of the loop iteration.

    Responses produced in one pass of the loop (pipelined requests, many connections) leave in
    one ``writelines`` per connection instead of one syscall per message. A connection may ask
    to hold its bytes one more pass (``holds_output``: the next pipelined request's Task has
    not run yet), so a pipelined burst leaves in one write.
    """

    __slots__ = ("call_soon", "pending", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.call_soon = loop.call_soon
        self.pending: list[Any] = []
        self.scheduled = False

    def add(self, conn: Any) -> None:
        self.pending.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.call_soon(self.run)

    def run(self) -> None:
        self.scheduled = False
        pending, self.pending = self.pending, []
        for conn in pending:
            if conn.holds_output():
                self.pending.append(conn)
            else:
                conn.flush()
        if self.pending and not self.scheduled:
            self.scheduled = True
            self.call_soon(self.run)
