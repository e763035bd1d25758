"""Serves the listening sockets of one worker process.

``ServerState`` builds the ``WorkerContext`` every connection reads (config, app, default header
block refreshed once a second with the Date, write flusher, parser, counters) and keeps the
connection registry: accept/shed at the ``worker_connections`` cap, the once-a-second tick, and
knowing when a drain is done. ``Server`` starts listening on sockets it is handed (it does not own them:
Gunicorn does), drains on shutdown and reports when the worker should stop.

Listening uses a duplicate of each of Gunicorn's sockets, so that a pause at the
``worker_connections`` cap can close the asyncio server without closing Gunicorn's socket:
connections not yet accepted stay in the kernel backlog, shared with the sibling workers, and
accepting resumes on a fresh duplicate. At the cap, the oldest connection with no request in
progress is closed to admit a new one; accepting pauses only while every connection is busy.

A drain closes every listening descriptor this process holds, the duplicates and Gunicorn's own
(inherited at the fork; the master and the siblings hold their own): while the master keeps the
socket, new clients go to a sibling; once the master has closed it too (it is stopping), nobody
holds it and a new client is refused instead of waiting in a backlog no one will accept from.
The drain then waits for the connections, and after them for the app calls still running (an
app may keep working after its response, or after its client left), within its budget.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import socket
import ssl
import sys
import weakref
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Callable
from typing import Any

from .app_tasks import app_calls, task_factory
from .config import Config
from .context import AppCalls, WorkerContext
from .http.extensions import connection_extensions
from .http.fields import DefaultHeaders
from .http.h1 import choose_parser
from .http.h1.connection import HTTPConnection
from .http.h1.flusher import Flusher
from .http.h1.proxy_stage import ProxyGate
from .http.protocols import connection_class
from .proxy import ProxyTrust
from .ws import make_upgrader

TICK = 1.0
# Seconds a quick exit (SIGINT/SIGQUIT) leaves for close frames and final writes to leave; also
# what app calls cancelled at the end of a drain get to unwind.
QUICK_GRACE = 0.3


class ServerState:
    """The connection registry of one worker, and the ``context`` its connections read."""

    __slots__ = (
        "connection_class", "connections", "context", "defaults", "draining", "full", "idle", "log",
        "loop", "max_connections", "on_full", "on_room", "parser_note", "pending", "resume_at",
        "ws_note",
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
            # PROXY protocol: None when off, so a connection checks one attribute and nothing else
            proxy_gate=ProxyGate(config, log) if config.proxy_protocol != "off" else None,
            registry=self,
            spawn=task_factory(loop, config.reset_contextvars),
            websocket_upgrade=websocket_upgrade,
        )
        # open connections in the order they were registered (a dict: ordered, unlike a set):
        # at the worker_connections cap the oldest idle one is closed first
        self.connections: dict[Any, None] = {}
        # worker_connections: at this many open connections an idle one is closed for each new
        # one; accepting pauses (``full``) while every connection is busy.
        self.max_connections = 0  # 0 = no cap
        self.resume_at = 0
        self.on_full: Callable[[Any], None] | None = None
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
        """The ``worker_connections`` cap. Paused there with every connection busy, accepting
        resumes a little below it (so that a busy server does not reopen its listener for every
        connection that closes), or as soon as a connection turns idle (the next tick)."""
        self.max_connections = cap
        self.resume_at = max(cap - max(cap // 20, 1), 0) if cap else 0

    def oldest_idle(self, skip: Any = None) -> HTTPConnection | None:
        """The longest-registered connection with no request in progress, ``skip`` aside."""
        for conn in self.connections:
            if conn is not skip and isinstance(conn, HTTPConnection) and conn.is_idle():
                return conn
        return None

    def connection_made(self, conn: Any) -> None:
        connections = self.connections
        connections[conn] = None
        self.pending.discard(conn)
        self.idle.clear()
        if self.draining:
            conn.shutdown()  # accepted while the listener was closing: answer once, then close

    def connection_lost(self, conn: Any) -> None:
        connections = self.connections
        connections.pop(conn, None)
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
        if self.draining and not self.connections:
            self.collect_unconnected()
        elif self.full and not self.draining and self.oldest_idle() is not None:
            # paused at the cap, and a connection has finished its request since: accept
            # again, a newcomer takes that connection's place
            self.full = False
            if self.on_room is not None:
                self.on_room()

    def collect_unconnected(self) -> None:
        """Drop the pending protocols nobody holds any more. asyncio never tells a protocol whose
        TLS handshake failed: it just lets go of it, and it leaves the weak set when collected --
        at once on CPython, at some later GC on PyPy, where a drain would otherwise wait its whole
        budget for connections that are long gone. Only while draining, with nothing else left."""
        if self.pending:
            gc.collect()
        if not self.connections and not self.pending:
            self.idle.set()  # the last pending protocol died unconnected (failed TLS handshake)

    def protocol_factory(self) -> HTTPConnection:
        """A new accepted connection: counted from here for ``worker_connections``."""
        conn = self.connection_class(self.context)
        pending = self.pending
        pending.add(conn)
        self.idle.clear()
        cap = self.max_connections
        if cap and not self.full and len(self.connections) + len(pending) >= cap:
            if self.on_full is not None:
                # not from inside the accept (uvloop would drop the socket it is attaching)
                self.loop.call_soon(self.on_full, conn)
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
        # the drain's deadline (``hurry`` brings it forward) and the future that wakes its wait
        self._deadline = float("inf")
        self._wake: asyncio.Future | None = None
        self._cap_logged = False
        state.on_full = self.at_cap
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
    def at_cap(self, new: Any) -> None:
        """``new`` brought the worker to its ``worker_connections`` cap (or past it).

        Past the cap, the oldest connection with no request in progress (one that never sent a
        byte, or an idle keep-alive one) is closed to make room, as nginx does: idle
        connections must not lock out a client with a request. At the cap with no idle
        connection left, accepting pauses: waiting clients stay in the backlog for the siblings.
        """
        state = self.state
        if state.full or state.draining:
            return
        cap = state.max_connections
        count = len(state.connections) + len(state.pending)
        if count < cap:
            return  # connections closed since
        if not self._cap_logged:
            self._cap_logged = True
            state.log.warning(
                "gworkers: worker_connections (%d) reached: idle connections are closed to "
                "admit new ones, and accepting pauses while every connection is busy", cap)
        idle = state.oldest_idle(skip=new)
        if idle is None:
            state.full = True
            self.stop_accepting()
        elif count > cap:
            state.log.debug("gworkers: worker_connections: closing an idle connection (%s) "
                            "for a new one", idle.client)
            idle.close()

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

    def stop_accepting(self) -> asyncio.Future:
        """Close the asyncio servers (the duplicates); done when their sockets are closed."""
        self.accepting = False
        servers, self.servers = self.servers, []
        loop = self.state.loop
        closed = loop.create_future()
        if servers and isinstance(loop, BaseSelectorEventLoop):
            # asyncio attaches a socket it accepted to its server one iteration later, and
            # drops it (unanswered) if the server was closed in between: stop reading the
            # listener now, close the server after those attachments have run.
            for server in servers:
                for sock in server.sockets:
                    loop.remove_reader(sock.fileno())

            def close_servers() -> None:
                for server in servers:
                    server.close()
                if not closed.done():
                    closed.set_result(None)

            loop.call_soon(loop.call_soon, close_servers)
        else:
            for server in servers:
                server.close()
            closed.set_result(None)
        return closed

    async def close_listeners(self) -> None:
        """Stop accepting and close every listening descriptor of this process.

        Gunicorn's sockets were inherited at the fork: closing them here leaves the master's
        and the siblings' descriptors open. A listening socket that nobody holds any more
        refuses new clients at once, where one still held (but not accepted from) would keep
        them waiting in its backlog until the worker exits.
        """
        closed = self.stop_accepting()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError as exc:  # pragma: no cover - close() of a socket object
                self.state.log.debug("gworkers: closing a listener: %s", exc)
        await closed

    # ------------------------------------------------------------------ shutdown
    def hurry(self) -> None:
        """A quick exit was asked for while draining: stop waiting, bar a moment for the
        close frames and last writes to leave."""
        self._deadline = min(self._deadline, self.state.loop.time() + QUICK_GRACE)
        for conn in list(self.state.connections):
            if hasattr(conn, "hurry"):
                conn.hurry()  # HTTP/2 says goodbye in its own terms: resets, a last GOAWAY
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _within_deadline(self, waited: asyncio.Future) -> bool:
        """Wait for ``waited`` until the drain's deadline; whether it finished."""
        loop = self.state.loop
        while not waited.done():
            left = self._deadline - loop.time()
            if left <= 0:
                return False
            self._wake = loop.create_future()
            await asyncio.wait([waited, self._wake], timeout=left,
                               return_when=asyncio.FIRST_COMPLETED)
        return True

    async def _cut_what_is_left(self) -> tuple[int, int]:
        """The drain's budget is spent: abort the connections, cancel the app calls; how many
        of each."""
        state = self.state
        cut = len(state.connections) + len(state.pending)
        for conn in list(state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        calls = app_calls(state.loop)
        for task in calls:
            task.cancel()
        # let the aborted connections and cancelled apps run their last steps
        await asyncio.sleep(0)
        if calls:
            await asyncio.wait(calls, timeout=QUICK_GRACE)
        return cut, len(calls)

    async def shutdown(self, timeout: float, quick: bool = False) -> tuple[int, int]:
        """Drain: close the listeners, then wait for the connections and for every app call
        still running, up to ``timeout`` seconds in all.

        Every registered connection (HTTP or WebSocket) gets ``shutdown()``: an idle HTTP
        connection closes at once, a busy one answers its request with ``Connection: close``,
        a WebSocket sends a close frame (1012). Once no connection is left (none can be
        added: the listeners are closed), the app calls still running are awaited: work an
        app does after its response, or after its client left, is part of the drain.
        ``quick`` (or ``hurry()`` during the wait) cuts the wait to a moment for the close
        frames to leave. What is left at the deadline is aborted or cancelled: returns how
        many connections and app calls (``(0, 0)`` when all finished in time)."""
        state = self.state
        loop = state.loop
        state.draining = True
        self._deadline = min(self._deadline, loop.time() + timeout)
        if self._resuming is not None:
            self._resuming.cancel()
        for conn in list(state.connections):
            conn.shutdown()
        if quick:
            self.hurry()  # (the deadline a moment away, HTTP/2's last GOAWAY)
        await self.close_listeners()
        # (sockets accepted just before the listeners closed have their protocol by now; they
        # were told to shut down when they registered)
        if not state.connections:
            state.collect_unconnected()
        state.log.info(
            "gworkers: draining: listeners closed; %d connection(s) open, %d app call(s) "
            "running, %.1f s to finish", len(state.connections) + len(state.pending),
            len(app_calls(loop)), max(self._deadline - loop.time(), 0.0))
        idle = loop.create_task(state.idle.wait())
        try:
            done = await self._within_deadline(idle)
        finally:
            idle.cancel()
        if done:
            calls = app_calls(loop)
            if calls:
                finished = loop.create_task(asyncio.wait(calls))
                try:
                    done = await self._within_deadline(finished)
                finally:
                    finished.cancel()  # (asyncio.wait leaves the calls themselves alone)
        cut, cancelled = (0, 0) if done else await self._cut_what_is_left()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        return cut, cancelled
