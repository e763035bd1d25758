"""Serves the listening sockets of one worker process.

``ServerState`` is what every connection shares: the config, the app, the default header block
(refreshed once a second with the Date), the write flusher, the connection registry and the
request counters. ``Server`` starts listening on sockets it is handed (it does not own them:
Gunicorn does), drains on shutdown and reports when the worker should stop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from .config import Config
from .http.connection import HTTPConnection
from .http.extensions import HANDLERS as EXTENSION_HANDLERS
from .http.extensions import connection_extensions
from .http.wire import DefaultHeaders
from .proxy import ProxyTrust

TICK = 1.0


def choose_parser(config: Config) -> tuple[type, str]:
    """The parser adapter class, and a note when ``auto`` had to fall back."""
    if config.http in ("auto", "httptools"):
        try:
            from .http.httptools_impl import HttptoolsParser
        except ImportError:
            if config.http == "httptools":
                raise
            from .http.h11_impl import H11Parser

            return H11Parser, "httptools is not installed: using h11"
        return HttptoolsParser, ""
    from .http.h11_impl import H11Parser

    return H11Parser, ""


class Flusher:
    """Defers each connection's writes to the end of the loop iteration.

    Responses produced in one pass of the loop (pipelined requests, many connections) leave in
    one ``writelines`` per connection instead of one syscall per message.
    """

    __slots__ = ("call_soon", "pending", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.call_soon = loop.call_soon
        self.pending: list[HTTPConnection] = []
        self.scheduled = False

    def add(self, conn: HTTPConnection) -> None:
        self.pending.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.call_soon(self.run)

    def run(self) -> None:
        self.scheduled = False
        pending, self.pending = self.pending, []
        for conn in pending:
            conn.flush()


class ServerState:
    def __init__(
        self,
        config: Config,
        app: Any,
        loop: asyncio.AbstractEventLoop,
        log: Any = None,
        lifespan_state: dict | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.loop = loop
        self.log = log or logging.getLogger("gunicorn.error")
        self.defaults = DefaultHeaders(config.server_header, config.date_header, config.headers)
        self.flusher = Flusher(loop)
        self.connections: set[HTTPConnection] = set()
        self.parser_class, self.parser_note = choose_parser(config)
        self.proxy = ProxyTrust(config)
        self.lifespan_state = lifespan_state if lifespan_state is not None else {}
        self.total_requests = 0
        # app calls in progress (``limit_concurrency``): counted by the connection around each
        # HTTP app call; a WebSocket session that wants to count adds and removes itself.
        self.in_flight = 0
        self.max_requests = 0  # 0 = no limit
        self.on_max_requests: Callable[[], None] | None = None
        self.websocket_upgrade: Callable[..., bool] | None = None
        self.extension_handlers: dict[str, Callable] = dict(EXTENSION_HANDLERS)
        self.server_cert: str | None = None  # PEM, for the TLS scope extension
        from .ws import make_upgrader

        # ws = none still gets an upgrader: it refuses the handshake cleanly (400)
        self.websocket_upgrade, self.ws_note = make_upgrader(self)
        self.idle = asyncio.Event()
        self.idle.set()

    # ------------------------------------------------------------------ per request
    def new_state(self) -> dict:
        state = self.lifespan_state
        return state.copy() if state else {}

    def extensions_for(self, transport: Any) -> dict:
        return connection_extensions(transport, self.server_cert)

    def request_started(self) -> None:
        self.total_requests += 1
        if self.max_requests and self.total_requests >= self.max_requests:
            callback, self.on_max_requests = self.on_max_requests, None
            if callback is not None:
                self.loop.call_soon(callback)

    def request_finished(self, cycle: Any) -> None:
        """A response is complete (a hook for access logs); ``in_flight`` is not counted here."""

    # ------------------------------------------------------------------ connections
    def connection_made(self, conn: HTTPConnection) -> None:
        self.connections.add(conn)
        self.idle.clear()

    def connection_lost(self, conn: HTTPConnection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self.idle.set()

    def tick(self) -> None:
        self.defaults.refresh()
        now = self.loop.time()
        for conn in list(self.connections):
            conn.check_timeouts(now)

    def protocol_factory(self) -> HTTPConnection:
        return HTTPConnection(self)


class Server:
    """Listens on sockets it does not own; ``shutdown`` drains within a deadline."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.servers: list[asyncio.AbstractServer] = []
        self._tick_handle: asyncio.TimerHandle | None = None

    async def start(
        self, sockets: list, backlog: int = 2048, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        loop = self.state.loop
        # A TLS handshake is part of getting the request head: same deadline (asyncio's is 60 s).
        tls = {"ssl_handshake_timeout": self.state.config.timeout_request_header or None}
        for sock in sockets:
            server = await loop.create_server(
                self.state.protocol_factory,
                sock=sock,
                backlog=backlog,
                ssl=ssl_context,
                **(tls if ssl_context is not None else {}),
            )
            self.servers.append(server)
        self._tick()

    def _tick(self) -> None:
        self.state.tick()
        self._tick_handle = self.state.loop.call_later(TICK, self._tick)

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.close()

    async def shutdown(self, timeout: float) -> bool:
        """Stop accepting, close idle connections, wait for the busy ones up to ``timeout``.

        Returns True when every connection finished in time.
        """
        self.stop_accepting()
        state = self.state
        for conn in list(state.connections):
            conn.shutdown()
        try:
            await asyncio.wait_for(state.idle.wait(), timeout)
            done = True
        except TimeoutError:
            done = False
            for conn in list(state.connections):
                conn.transport.abort() if hasattr(conn.transport, "abort") else None
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        return done
