"""Deferred writes: each connection's bytes leave at the end of the loop iteration."""

from __future__ import annotations

import asyncio
from typing import Any


class Flusher:
    """Defers each connection's writes to the end of the loop iteration.

    Responses produced in one pass of the loop (pipelined requests, many connections) leave in
    one ``writelines`` per connection instead of one syscall per message.

    One exception: while pipelined requests are answered one Task after the other, the next
    request's Task has been created but has not run yet (its stream's ``app_entered`` is
    False): that connection's bytes wait one more pass, so all the responses of a pipelined
    burst leave in one write. As soon as a request's app has run once (and may now wait on
    something slow), what is pending is written.
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
            # (read here rather than through a connection method: one call per pipelined
            # response, ~1% of pipe16's instructions)
            cycle = conn.cycle
            if cycle is not None and not cycle.app_entered and not conn.closing \
                    and conn.out is not None:
                self.pending.append(conn)
            else:
                conn.flush()
        if self.pending and not self.scheduled:
            self.scheduled = True
            self.call_soon(self.run)
