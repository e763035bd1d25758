"""What every connection of one worker shares: built once (``server.build_context``), then read.

``WorkerContext`` replaces handing the whole server to every connection: a protocol reads its
settings and services here (config, loop, app, log, default headers, proxy trust, the access-log
bridge, the task spawner, the write flusher, the parser and WebSocket upgrader chosen for the
``http``/``ws`` settings) and reports to the server only through ``registry`` and ``calls``.

The counters live behind methods in ``AppCalls``, the one mutable thing here. This module
imports nothing from the package's protocols or server, so everything may import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol


class ConnectionRegistry(Protocol):
    """The server's side of a connection's lifetime (``server.ServerState``)."""

    draining: bool  # the worker is draining (an app call cancelled now is not an app error)

    def connection_made(self, conn: Any) -> None: ...

    def connection_lost(self, conn: Any) -> None: ...


class AppCalls:
    """App calls in progress (``limit_concurrency``; a drain waits for them) and requests
    served (Gunicorn's ``max_requests``, WebSocket handshakes included, as Gunicorn counts)."""

    __slots__ = ("limit", "loop", "max_requests", "on_max_requests", "running", "served")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = 0) -> None:
        self.loop = loop
        self.limit = limit  # limit_concurrency; 0 = none
        self.running = 0
        self.served = 0
        self.max_requests = 0  # 0 = no limit
        self.on_max_requests: Callable[[], None] | None = None

    def full(self) -> bool:
        """At ``limit_concurrency``: a new request is answered 503 without calling the app."""
        return bool(self.limit) and self.running >= self.limit

    def started(self) -> None:
        self.running += 1

    def finished(self) -> None:
        self.running -= 1

    def request_started(self) -> None:
        """A request (or a WebSocket handshake) for ``max_requests``."""
        self.served += 1
        if self.max_requests and self.served >= self.max_requests:
            self.max_requests_reached()

    def max_requests_reached(self) -> None:
        callback, self.on_max_requests = self.on_max_requests, None
        if callback is not None:
            self.loop.call_soon(callback)

    def set_max_requests(self, count: int, callback: Callable[[], None]) -> None:
        self.max_requests = count
        self.on_max_requests = callback


class WorkerContext:
    """Read-only per-worker settings and services (see the module docstring)."""

    __slots__ = (
        "access", "app", "calls", "config", "defaults", "eager", "extensions_for", "flusher",
        "lifespan_state", "log", "loop", "parser_class", "proxy", "proxy_gate", "registry", "spawn",
        "websocket_upgrade",
    )

    def __init__(self, **services: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, services.pop(name))
        if services:
            raise TypeError(f"unknown context services: {sorted(services)}")

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, name):
            raise AttributeError(f"WorkerContext is read-only ({name})")
        object.__setattr__(self, name, value)
