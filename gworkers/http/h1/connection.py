"""The HTTP/1.1 connection: one asyncio.Protocol for both parser adapters.

It owns the transport until a WebSocket session takes it over, keeps requests in order
(pipelining: one ``HTTPStream`` per request, answered one at a time), applies flow control both
ways, answers protocol errors, and hands WebSocket upgrades over (``upgrade.py``). The parser
adapters push three calls into it -- ``on_request``, ``on_body``, ``on_complete`` (and
``on_upgrade`` at the end of an upgraded head) -- and raise ``ProtocolError`` for everything else.
It is the ``ResponseSink`` of the stream being answered (``writer.py``).

The deadlines (request head, keep-alive idle, body progress) and the drain are ``timers.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...context import WorkerContext
from ...errors import ContentTooLarge, ProtocolError
from ...flow import WriteFlow, transport_addresses
from ..extensions import with_trailers
from ..stream import AWAITING_START, DONE, HTTPStream
from ..target import decode_path
from . import wire
from .head import METHODS, PLAIN_HEAD, Head, read_request
from .timers import NO_DEADLINE, ConnectionTimers
from .upgrade import Upgrades
from .writer import ResponseWriter

# Buffered request body (per request) past which reading pauses until the app receives.
BODY_HIGH_WATER = 64 * 1024
# Requests parsed ahead of the one being answered before reading pauses.
PIPELINE_DEPTH = 16

_ASGI = {"version": "3.0", "spec_version": "2.4"}


class HTTPConnection(ResponseWriter, Upgrades, ConnectionTimers, WriteFlow, asyncio.Protocol):
    # Slots: every attribute access on the hot path is a fixed offset (a dict of 40 keys stops
    # being shared between instances), and an idle connection is smaller.
    __slots__ = (
        "__weakref__", "accepting", "app", "body_deadline", "body_limit_left", "body_progress",
        "answering", "calls", "client", "closed", "closing", "config", "context", "cycle", "defaults",
        "drain_waiter", "eof", "extensions", "flusher", "head_deadline", "held", "idle_deadline",
        "keep_alive", "loop", "more_requests", "out", "out_chunked", "out_size", "out_trailers",
        "parser", "parsing", "pending_error", "pipeline", "read_paused", "reading", "requests",
        "scheme", "sockname", "task", "transport", "trusted", "upgrade_to", "write_paused",
    )

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.config = context.config
        self.loop = context.loop
        self.app = context.app
        self.defaults = context.defaults
        self.flusher = context.flusher
        self.calls = context.calls
        self.transport: Any = None
        self.parser: Any = None
        self.cycle: HTTPStream | None = None  # the request being answered
        self.reading: HTTPStream | None = None  # the request whose body is being parsed
        # requests parsed ahead of the one being answered, at most PIPELINE_DEPTH: a list (56
        # bytes empty) rather than a deque, whose first block is 0.6 KiB on every idle connection
        self.pipeline: list[HTTPStream] = []
        self.out: list | None = None  # writes deferred to the end of this loop iteration
        self.out_size = 0
        # the response being written (ResponseWriter): its head until the first body bytes,
        # whether the connection stays open after it, its framing
        self.held = b""
        self.keep_alive = True
        self.out_chunked = False
        self.out_trailers = False
        self.write_paused = False
        self.read_paused = False
        self.drain_waiter: asyncio.Future | None = None
        self.closed = False
        self.closing = False  # close once the pending writes are flushed
        self.accepting = True  # False while draining: no further request on this connection
        self.pending_error: ProtocolError | None = None
        self.client: tuple | None = None
        self.sockname: tuple | None = None
        self.scheme = "http"
        self.extensions: dict = {}
        self.trusted = False
        self.idle_deadline = 0.0
        self.head_deadline = 0.0
        self.body_deadline = 0.0
        self.body_progress = 0
        self.body_limit_left: int | None = None  # chunked body bytes still allowed
        self.task: asyncio.Task | None = None
        self.answering = False  # inside answer()'s spawn: a finished response leaves the next to it
        self.requests = 0
        self.more_requests = True  # the last request read allows another one after it
        self.upgrade_to: Any = None  # the protocol taking the transport over (WebSocket)
        self.eof = False  # the peer half-closed: no request will follow
        self.parsing = False  # inside data_received: more requests of this read may follow

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        context = self.context
        self.client, self.sockname, tls = transport_addresses(transport)
        if tls:
            self.scheme = "https"
        self.extensions = context.extensions_for(transport)
        self.trusted = context.proxy.trusts(self.client)
        self.parser = context.parser_class(self, self.config)
        if context.proxy_gate is not None:  # PROXY protocol: its header comes before any HTTP
            self.parser = context.proxy_gate.stage(self, self.parser)
        now = self.loop.time()
        self.idle_deadline = self.head_deadline = now + (self.config.timeout_request_header or NO_DEADLINE)
        if self.config.timeout_keep_alive <= 0:
            self.accepting = False  # Gunicorn's keepalive = 0: one request per connection
        context.registry.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self.parsing = True
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self.protocol_error(exc)
        finally:
            self.parsing = False

    def proxy_header_read(self, rest: bytes) -> None:
        """The PROXY protocol stage is done and the HTTP parser is back: ``rest`` followed the
        header."""
        if rest:
            self.parser.feed(rest)  # a ProtocolError goes to data_received, as from the parser

    def eof_received(self) -> bool | None:
        """The peer will send nothing more; it may still read the answers to what it sent.

        With no request being answered nothing more can come (a partial head or the rest of an
        answered body can never complete): close. Otherwise the requests already read are
        answered, then the connection closes; a body that can no longer complete is told the
        client went away (one never started is dropped), and the request being answered sees
        ``http.disconnect`` once its body has been delivered, so an app waiting for the
        disconnect gets it.
        """
        self.eof = True
        if self.cycle is None:
            self.close()
        else:
            # answer what was sent (requests parsed ahead included: their responses must not
            # announce a close), then close in response_done
            reading = self.reading
            if reading is not None:
                self.reading = None
                reading.on_disconnect()
                if reading is not self.cycle:
                    try:
                        self.pipeline.remove(reading)
                    except ValueError:
                        pass
            self.cycle.on_eof()
            for stream in self.pipeline:
                stream.on_eof()
        # TLS transports close themselves on EOF whatever we answer (and warn if we say True).
        return self.scheme != "https"

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.out = None
        for cycle in (self.cycle, self.reading, *self.pipeline):
            if cycle is not None:
                cycle.on_disconnect()
        self.pipeline.clear()
        self.release_drain()
        self.context.registry.connection_lost(self)

    # ------------------------------------------------------------------ from the parser adapters
    def on_request(
        self, method: bytes, target: bytes, version: str, headers: list, watched: list | None = None
    ) -> bool:
        """A complete head arrived: its scope and stream. True when the connection was upgraded.

        ``watched``: the fields named in ``head.watched_names``, when the parser set them aside.
        (The scope is built here rather than in a method of its own: 600 instructions less per
        request, measured on the plaintext benchmark.)
        """
        config = self.config
        request = read_request(method, target, version, headers, config.limit_request_body, watched)
        head = request.head
        root = config.root_path
        raw_path = request.raw_path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = decode_path(raw_path)
        context = self.context
        state = context.lifespan_state
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": request.version,
            "server": self.sockname,
            "client": self.client,
            "scheme": self.scheme,
            "method": METHODS[method],  # check_head refused any other method
            "root_path": root,
            "path": root + path if root else path,
            "raw_path": root.encode() + raw_path if root else raw_path,
            "query_string": request.query_string,
            "headers": request.headers,
            "state": state.copy() if state else {},  # a shallow copy per request (ASGI)
            "extensions": with_trailers(self.extensions) if head.te_trailers else self.extensions,
        }
        if self.trusted and (watched is None or len(watched) > 1 or watched and watched[0][0] != b"host"):
            # (a request whose only watched field is Host carries no proxy header)
            context.proxy.apply(scope, self, watched)
        if head is PLAIN_HEAD:  # no body, keep-alive, no upgrade, nothing expected
            stream = HTTPStream(self, scope, context, True, False)
            self.more_requests = self.accepting
        else:
            stream = self.framed_stream(scope, head)
            if stream is None:
                return True
        self.requests += 1
        access = context.access
        if access is not None:
            access.begin(stream, target)  # Gunicorn's pre_request hook and access-log record
        if self.cycle is None:
            self.answer(stream)
        else:
            self.pipeline.append(stream)
            if len(self.pipeline) >= PIPELINE_DEPTH:
                self.pause_reading()
        calls = self.calls  # calls.request_started(), inline: it is every request
        calls.served += 1
        if calls.max_requests and calls.served >= calls.max_requests:
            calls.max_requests_reached()
        return False

    def framed_stream(self, scope: dict, head: Head) -> HTTPStream | None:
        """The stream of a request that is not ``PLAIN_HEAD`` (a body to read, a close, an
        upgrade, an expectation), or None when a WebSocket session took the connection over."""
        if head.upgrade is not None and head.upgrade == b"websocket" and self.upgrade(scope):
            return None
        body_complete = not head.chunked and not head.content_length
        stream = HTTPStream(self, scope, self.context, body_complete,
                            head.expect_continue and not body_complete)
        self.more_requests = head.keep_alive and self.accepting  # (False with an upgrade)
        if not body_complete:
            self.reading = stream
            config = self.config
            self.body_deadline = self.loop.time() + (config.timeout_request_body or NO_DEADLINE)
            self.body_progress = 0
            limit = config.limit_request_body
            self.body_limit_left = limit if limit and head.chunked else None
        return stream

    def on_body(self, data: bytes) -> None:
        cycle = self.reading
        left = self.body_limit_left
        if left is not None:
            left -= len(data)
            if left < 0:
                raise ContentTooLarge("request body too large")
            self.body_limit_left = left
        self.body_progress += len(data)
        if cycle is None or cycle.state is DONE or cycle.disconnected:
            return  # the app is done with it: discard
        cycle.on_body(data)
        if cycle.buffered > BODY_HIGH_WATER and not self.read_paused:
            self.pause_reading()

    def on_complete(self) -> bool:
        """The request's body is complete. False: read no further request on this connection
        (RFC 9112 9.6: after ``close`` the server MUST NOT process further requests)."""
        cycle = self.reading
        if cycle is not None:
            self.reading = None
            cycle.on_body_end()
        return self.more_requests

    # ------------------------------------------------------------------ the stream's requests
    def consumed(self, size: int) -> None:
        """ResponseSink: the app took request body bytes, or waits for more."""
        if self.read_paused and len(self.pipeline) < PIPELINE_DEPTH:
            self.resume_reading()

    def response_ended(self) -> None:
        """The response is complete: close, or move to the next request."""
        cycle = self.cycle
        if not self.keep_alive or self.pending_error is not None and not self.pipeline:
            if self.reading is cycle:
                self.reading = None
            self.pipeline.clear()
            self.finish_with_error()
            return
        if self.reading is cycle:
            # The app answered without reading the whole body: keep parsing and discard it
            # (reading may have paused on the unread buffer; nothing would ever resume it).
            cycle.body = ()
            cycle.buffered = 0
            self.resume_reading()
        self.cycle = None
        if self.pipeline:
            if not self.answering:
                self.answer(self.pipeline.pop(0))
            # else: inside answer(), whose loop answers the next one once this Task's step returns
        elif not self.accepting or self.eof:
            self.close()
        else:
            self.idle_deadline = self.loop.time() + self.config.timeout_keep_alive
            self.head_deadline = 0.0  # set by the sweep that first sees the next head begun

    def answer(self, stream: HTTPStream) -> None:
        """Answer ``stream`` now (its app call becomes a Task; 503 past limit_concurrency), then
        the pipelined requests an eagerly started Task answered its way through.

        An eagerly started Task (3.12+) can finish its response before ``spawn`` returns; its
        ``response_ended`` leaves the next pipelined request to this loop instead of answering
        it from inside the Task, so a burst of pipelined requests is a loop here, not a
        recursion through nested Task starts that overflows the stack after ~140 requests.
        """
        while True:
            if self.read_paused and len(self.pipeline) < PIPELINE_DEPTH:
                self.resume_reading()  # paused on a full pipeline, which has room again
            self.cycle = stream
            calls = self.calls
            # calls.full() and calls.started(), inline: two calls per request (~300 instructions)
            if calls.limit and calls.running >= calls.limit:
                self.refuse(stream)
                return
            calls.running += 1
            context = self.context
            if not context.eager:  # a Task that first runs on a later loop pass
                self.task = context.spawn(stream.run(self.app))  # a strong reference while it runs
                return
            self.answering = True
            try:
                task = context.spawn(stream.run(self.app))
            finally:
                self.answering = False
            if not task.done():
                self.task = task
            if self.cycle is not None or not self.pipeline:
                return
            stream = self.pipeline.pop(0)

    def refuse(self, stream: HTTPStream) -> None:
        """Past ``limit_concurrency``: 503 and close, without calling the app."""
        self.keep_alive = False
        if self.reading is stream:
            self.reading = None
        self.pipeline.clear()
        self.pause_reading()
        self.write(wire.error_reply(503, block=self.defaults.block))
        stream.answered(503)
        self.close()

    # ------------------------------------------------------------------ errors and timeouts
    def protocol_error(self, exc: ProtocolError) -> None:
        """Answer a broken request with its status and close; never call the app for it."""
        self.pause_reading()
        log = self.context.log
        reading = self.reading
        if reading is not None:
            self.reading = None
            if reading is self.cycle or reading.state is DONE:
                # broken body of the request the app is answering (or has answered)
                reading.on_disconnect()
                if reading.state is AWAITING_START:
                    self.write(wire.error_reply(exc.status, block=self.defaults.block))
                    reading.answered(exc.status)
                log.debug("Malformed request body: %s", exc)
                self.close()
                return
            # a pipelined request not started yet: never run it; answer after those before it
            try:
                self.pipeline.remove(reading)
            except ValueError:
                pass
        log.debug("Malformed request: %s", exc)
        self.pending_error = exc
        if self.cycle is None:
            self.finish_with_error()
        # else: answer the requests before the broken one first

    def finish_with_error(self) -> None:
        exc = self.pending_error
        if exc is not None and not self.closed:
            self.pending_error = None
            self.write(wire.error_reply(exc.status, block=self.defaults.block))
        self.close()

    # ------------------------------------------------------------------ read flow control
    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed and not self.closing:
            self.read_paused = False
            self.transport.resume_reading()
            if self.reading is not None:
                # the client's window starts now: the time we did not read was our wait, and a
                # tick just after resuming must not find the body late
                self.body_progress = 0
                self.body_deadline = self.loop.time() + (self.config.timeout_request_body or NO_DEADLINE)
