"""Serves the listening sockets of one worker process.

``ServerState`` builds the ``WorkerContext`` every connection reads (config, app, default header
block refreshed once a second with the Date, write flusher, parser, counters) and keeps the
connection registry: accept/shed at the ``worker_connections`` cap, the once-a-second tick, and
knowing when a drain is done. ``Server`` starts listening on sockets it is handed (it does not own them:
Gunicorn does), drains on shutdown and reports when the worker should stop.

Listening uses a duplicate of each of Gunicorn's sockets, so that "stop accepting" (at the
``worker_connections`` cap, or when draining) can close the asyncio server without closing
Gunicorn's socket: connections not yet accepted stay in the kernel backlog, shared with the
sibling workers, and accepting resumes on a fresh duplicate.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import ssl
import sys
import weakref
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Callable
from typing import Any

from .config import Config
from .context import AppCalls, WorkerContext
from .errors import BootError
from .http.extensions import connection_extensions
from .http.fields import DefaultHeaders
from .http.h1 import choose_parser
from .http.h1.connection import HTTPConnection
from .http.h1.flusher import Flusher
from .proxy import ProxyTrust
from .ws import make_upgrader

TICK = 1.0
# Seconds a quick exit (SIGINT/SIGQUIT) leaves for close frames and final writes to leave.
QUICK_GRACE = 0.3


def task_factory(loop: asyncio.AbstractEventLoop, fresh_context: bool) -> Callable[[Any], Any]:
    """How a request's app call becomes a Task, decided once: in a fresh, empty context
    (``reset_contextvars``), started eagerly where asyncio can (3.12+: the app runs at once,
    a loop pass earlier), or a plain ``create_task``."""
    if fresh_context:
        import contextvars

        return lambda coro: loop.create_task(coro, context=contextvars.Context())
    if sys.version_info >= (3, 12):
        return functools.partial(asyncio.Task, loop=loop, eager_start=True)
    return loop.create_task


def connection_class(config: Config, tls: bool) -> type:
    """``HTTPConnection``, or the class that negotiates HTTP/2 when ``http_protocols`` has h2
    (imported only then: the h2 package is the ``http2`` extra)."""
    if "h2" not in config.http_protocols:
        return HTTPConnection
    try:
        from .http.h2.negotiate import connection_class as negotiating
    except ImportError as exc:
        raise BootError(f"http_protocols has h2 but HTTP/2 cannot be served: {exc} "
                        "(pip install 'gworkers[http2]')") from None
    return negotiating(config, tls)


class ServerState:
    """The connection registry of one worker, and the ``context`` its connections read."""

    __slots__ = (
        "connection_class", "connections", "context", "defaults", "draining", "full", "idle",
        "log", "loop", "max_connections", "on_full", "on_room", "parser_note", "pending", "resume_at", "ws_note",
    )

    def __init__(
        self,
        config: Config,
        app: Any,
        loop: asyncio.AbstractEventLoop,
        log: Any = None,
        lifespan_state: dict | None = None,
        access: Any = None,
        server_cert: str | None = None,
        tls: bool = False,
    ) -> None:
        """``access``: Gunicorn's log.access / statsd / pre_request / post_request bridge
        (``accesslog.AccessBridge``), None unless someone reads it; ``server_cert``: PEM, for
        the TLS scope extension; ``tls``: the sockets are served with TLS (ALPN may pick h2)."""
        self.loop = loop
        self.log = log = log or logging.getLogger("gunicorn.error")
        self.defaults = DefaultHeaders(config.server_header, config.date_header, config.headers)
        parser_class, self.parser_note = choose_parser(config)
        # HTTP/1.1 unless http_protocols has h2: then a class that negotiates (http/h2)
        self.connection_class = connection_class(config, tls)
        # ws = none still gets an upgrader: it refuses the handshake cleanly (400)
        websocket_upgrade, self.ws_note = make_upgrader(config)
        self.context = WorkerContext(
            access=access,
            app=app,
            calls=AppCalls(loop, config.limit_concurrency or 0),
            config=config,
            defaults=self.defaults,
            eager=sys.version_info >= (3, 12) and not config.reset_contextvars,
            extensions_for=functools.partial(connection_extensions, server_cert=server_cert),
            flusher=Flusher(loop),
            lifespan_state=lifespan_state if lifespan_state is not None else {},
            log=log,
            loop=loop,
            parser_class=parser_class,
            proxy=ProxyTrust(config),
            registry=self,
            spawn=task_factory(loop, config.reset_contextvars),
            websocket_upgrade=websocket_upgrade,
        )
        self.connections: set[Any] = set()
        # worker_connections: at this many open connections the server stops accepting.
        self.max_connections = 0  # 0 = no cap
        self.resume_at = 0
        self.on_full: Callable[[], None] | None = None
        self.on_room: Callable[[], None] | None = None
        self.full = False
        self.draining = False
        # Protocols created but not yet connected (asyncio creates them a loop iteration after
        # accept(); TLS connects them after the handshake): a drain must wait for them too.
        self.pending: weakref.WeakSet = weakref.WeakSet()
        self.idle = asyncio.Event()
        self.idle.set()

    # ------------------------------------------------------------------ connections
    def set_max_connections(self, cap: int) -> None:
        """Stop accepting at ``cap`` open connections; resume a little below it, so that a
        server at its cap does not reopen its listener for every connection that closes."""
        self.max_connections = cap
        self.resume_at = max(cap - max(cap // 20, 1), 0) if cap else 0

    def connection_made(self, conn: Any) -> None:
        connections = self.connections
        connections.add(conn)
        self.pending.discard(conn)
        self.idle.clear()
        if self.draining:
            conn.shutdown()  # accepted while the listener was closing: answer once, then close

    def connection_lost(self, conn: Any) -> None:
        connections = self.connections
        connections.discard(conn)
        if not connections and not self.pending:
            self.idle.set()
        # (a WebSocket taking a connection over registers before the connection leaves: the
        # count never moves for it)
        if self.full and len(connections) + len(self.pending) <= self.resume_at \
                and not self.draining:
            self.full = False
            if self.on_room is not None:
                self.on_room()

    def tick(self) -> None:
        self.defaults.refresh()
        now = self.loop.time()
        for conn in list(self.connections):
            conn.check_timeouts(now)
        if self.draining and not self.connections and not self.pending:
            self.idle.set()  # the last pending protocol died unconnected (failed TLS handshake)

    def protocol_factory(self) -> HTTPConnection:
        """A new accepted connection: counted from here for ``worker_connections``."""
        conn = self.connection_class(self.context)
        pending = self.pending
        pending.add(conn)
        self.idle.clear()
        cap = self.max_connections
        if cap and not self.full and len(self.connections) + len(pending) >= cap:
            self.full = True
            if self.on_full is not None:
                # not from inside the accept (uvloop would drop the socket it is attaching)
                self.loop.call_soon(self.on_full)
        return conn


class Server:
    """Listens on duplicates of sockets it does not own; ``shutdown`` drains within a budget."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.sockets: list[socket.socket] = []
        self.servers: list[asyncio.AbstractServer] = []
        self.backlog = 2048
        self.ssl_context: ssl.SSLContext | None = None
        self.accepting = False
        self._resuming: asyncio.Task | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._hurry: asyncio.Future | None = None
        state.on_full = self.pause
        state.on_room = self.resume

    async def start(
        self, sockets: list, backlog: int = 2048, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.sockets = list(sockets)
        self.backlog = backlog
        self.ssl_context = ssl_context
        await self._listen()
        self._tick()

    async def _listen(self) -> None:
        loop = self.state.loop
        self.accepting = True
        # A TLS handshake is part of getting the request head: same deadline (asyncio's is 60 s).
        tls = {"ssl_handshake_timeout": self.state.context.config.timeout_request_header or None}
        for sock in self.sockets:
            # The asyncio server closes the socket it serves when it is closed: hand it a
            # duplicate so Gunicorn's socket (and the kernel backlog behind it) stays open.
            dup = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
            try:
                server = await loop.create_server(
                    self.state.protocol_factory,
                    sock=dup,
                    backlog=self.backlog,
                    ssl=self.ssl_context,
                    **(tls if self.ssl_context is not None else {}),
                )
            except BaseException:
                dup.close()
                raise
            self.servers.append(server)

    def _tick(self) -> None:
        self.state.tick()
        self._tick_handle = self.state.loop.call_later(TICK, self._tick)

    # ------------------------------------------------------------------ worker_connections
    def pause(self) -> None:
        """At the cap: stop accepting; waiting clients stay in the backlog for the siblings."""
        if self.state.full:  # (not if connections closed since the cap was reached)
            self.stop_accepting()

    def resume(self) -> None:
        if self.accepting or self._resuming is not None or self.state.draining:
            return
        self._resuming = self.state.loop.create_task(self._resume())

    async def _resume(self) -> None:
        try:
            if not self.state.draining and not self.state.full:
                await self._listen()
        except OSError as exc:
            self.state.log.error("gworkers: cannot resume accepting: %s", exc)
        finally:
            self._resuming = None
        if self.state.draining or self.state.full:
            self.stop_accepting()  # the cap was reached again, or a drain began, meanwhile

    def stop_accepting(self) -> None:
        self.accepting = False
        servers, self.servers = self.servers, []
        loop = self.state.loop
        for server in servers:
            if isinstance(loop, BaseSelectorEventLoop):
                # asyncio attaches a socket it accepted to its server one iteration later, and
                # drops it (unanswered) if the server was closed in between: stop reading the
                # listener now, close the server after those attachments have run.
                for sock in server.sockets:
                    loop.remove_reader(sock.fileno())
                loop.call_soon(loop.call_soon, server.close)
            else:
                server.close()

    # ------------------------------------------------------------------ shutdown
    def hurry(self) -> None:
        """A quick exit was asked for while draining: stop waiting for in-flight requests."""
        if self._hurry is not None and not self._hurry.done():
            self._hurry.set_result(None)

    async def shutdown(self, timeout: float, quick: bool = False) -> int:
        """Stop accepting, close idle connections, wait for the busy ones up to ``timeout``.

        Every registered connection (HTTP or WebSocket) gets ``shutdown()``: an idle HTTP
        connection closes at once, a busy one answers its request with ``Connection: close``,
        a WebSocket sends a close frame (1012). ``quick`` (or ``hurry()`` during the wait) cuts
        the wait to a moment for those frames to leave. Whatever is left is then aborted.
        Returns how many connections had to be aborted (0: every one finished in time).
        """
        state = self.state
        loop = state.loop
        state.draining = True
        self.stop_accepting()
        if self._resuming is not None:
            self._resuming.cancel()
        for conn in list(state.connections):
            conn.shutdown()
        # sockets accepted just before the listener closed get their protocol a loop
        # iteration later (asyncio): let that happen before looking at the registry
        await asyncio.sleep(0)
        self._hurry = loop.create_future()
        if quick:
            self._hurry.set_result(None)
        idle = loop.create_task(state.idle.wait())
        try:
            await asyncio.wait([idle, self._hurry], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            if not idle.done() and self._hurry.done():
                await asyncio.wait([idle], timeout=QUICK_GRACE)
            done = idle.done()
        finally:
            idle.cancel()
        cut = 0 if done else len(state.connections) + len(state.pending)
        if not done:
            for conn in list(state.connections):
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.abort()
                task = getattr(conn, "task", None)
                if task is not None and not task.done():
                    task.cancel()
            # let the aborted connections and cancelled apps run their last step
            await asyncio.sleep(0)
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        return cut
