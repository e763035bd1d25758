"""The HTTP/1.1 connection: one asyncio.Protocol for both parser adapters.

It owns the transport until a WebSocket session takes it over, keeps requests in order
(pipelining: one ``HTTPStream`` per request, answered one at a time), applies flow control both
ways, answers protocol errors, and hands WebSocket upgrades over (``upgrade.py``). The parser
adapters push three calls into it -- ``on_request``, ``on_body``, ``on_complete`` (and
``on_upgrade`` at the end of an upgraded head) -- and raise ``ProtocolError`` for everything else.
It is the ``ResponseSink`` of the stream being answered (``writer.py``).

Timers are not armed per request: the server sweeps its connections once a second and each one
compares the deadlines it keeps (``check_timeouts``). No deadline is moved by the arrival of
bytes, so a peer trickling single bytes gains nothing:

* a new connection has ``timeout_request_header`` seconds from accept to deliver a complete
  request head (silent: closed; a head had begun: 408);
* a kept-alive connection may idle ``timeout_keep_alive`` seconds; once the next head has begun
  it has ``timeout_request_header`` seconds (counted from the sweep that first sees it) to finish;
* a request body must bring ``BODY_PROGRESS`` bytes, or its end, in every
  ``timeout_request_body`` window, unless reading is paused on our side or a 100-continue is
  still owed (then the client is waiting for us): 408 if no response started, else closed.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios
from typing import Any

from ...context import WorkerContext
from ...errors import ContentTooLarge, ProtocolError, RequestTimeout
from ...flow import WriteFlow
from ..extensions import with_trailers
from ..stream import AWAITING_START, DONE, HTTPStream
from ..target import decode_path
from . import wire
from .head import METHODS, PLAIN_HEAD, read_request
from .upgrade import Upgrades
from .writer import ResponseWriter

# Buffered request body (per request) past which reading pauses until the app receives.
BODY_HIGH_WATER = 64 * 1024
# Seconds a connection accepted just before a drain has to send its first request.
DRAIN_GRACE = 1.0
# Requests parsed ahead of the one being answered before reading pauses.
PIPELINE_DEPTH = 16
# Body bytes a request must bring in each ``timeout_request_body`` window to count as progress.
BODY_PROGRESS = 1024
# A timeout of 0 turns that deadline off.
_OFF = float("inf")

_ASGI = {"version": "3.0", "spec_version": "2.4"}


def input_waiting(transport: Any) -> bool:
    """Whether bytes sit unread in the transport's socket (FIONREAD; for TLS, raw records)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    try:
        count = array.array("i", [0])
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    except (OSError, ValueError):
        return False
    return count[0] > 0


class HTTPConnection(ResponseWriter, Upgrades, WriteFlow, asyncio.Protocol):
    # Slots: every attribute access on the hot path is a fixed offset (a dict of 40 keys stops
    # being shared between instances), and an idle connection is smaller.
    __slots__ = (
        "__weakref__", "accepting", "app", "body_deadline", "body_limit_left", "body_progress",
        "calls", "client", "closed", "closing", "config", "context", "cycle", "defaults",
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
        # the response being written (ResponseWriter): its head until the first body bytes
        # (None: not started), whether the connection stays open after it, its framing
        self.held: bytes | None = None
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
        self.requests = 0
        self.more_requests = True  # the last request read allows another one after it
        self.upgrade_to: Any = None  # the protocol taking the transport over (WebSocket)
        self.eof = False  # the peer half-closed: no request will follow
        self.parsing = False  # inside data_received: more requests of this read may follow

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        context = self.context
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        if isinstance(peer, tuple):
            self.client = (peer[0], peer[1])
        if isinstance(sock, tuple):
            self.sockname = (sock[0], sock[1])
        elif isinstance(sock, str) and sock:
            self.sockname = (sock, None)
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.extensions = context.extensions_for(transport)
        self.trusted = context.proxy.trusts(self.client)
        self.parser = context.parser_class(self, self.config)
        if context.proxy_gate is not None:  # PROXY protocol: its header comes before any HTTP
            self.parser = context.proxy_gate.stage(self, self.parser)
        now = self.loop.time()
        self.idle_deadline = self.head_deadline = now + (self.config.timeout_request_header or _OFF)
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
        self, method: bytes, target: bytes, version: str, headers: list, notable: list | None = None
    ) -> bool:
        """A complete head arrived. Returns True when the connection was upgraded.

        ``notable``: the fields named in ``head.watched_names``, when the parser set them aside.
        """
        config = self.config
        limit = config.limit_request_body
        head, version, raw_path, query, headers = read_request(
            method, target, version, headers, limit, notable
        )
        context = self.context
        root = config.root_path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = decode_path(raw_path)
        state = context.lifespan_state
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.sockname,
            "client": self.client,
            "scheme": self.scheme,
            "method": METHODS[method],  # check_head refused any other method
            "root_path": root,
            "path": root + path if root else path,
            "raw_path": root.encode() + raw_path if root else raw_path,
            "query_string": query,
            "headers": headers,
            "state": state.copy() if state else {},  # a shallow copy per request (ASGI)
            "extensions": self.extensions if not head.te_trailers else with_trailers(self.extensions),
        }
        if self.trusted and (notable is None or len(notable) > 1 or notable and notable[0][0] != b"host"):
            # (a request whose only notable field is Host carries no proxy header)
            context.proxy.apply(scope, self, notable)
        if head is PLAIN_HEAD:  # no body, keep-alive, no upgrade, nothing expected
            body_complete = True
            keep_alive = self.accepting
            stream = HTTPStream(self, scope, context, True, False)
        else:
            if head.upgrade is not None and head.upgrade == b"websocket" and self.upgrade(scope):
                return True
            body_complete = not head.chunked and not head.content_length
            keep_alive = head.keep_alive and self.accepting and head.upgrade is None
            stream = HTTPStream(self, scope, context, body_complete,
                                head.expect_continue and not body_complete)
        self.requests += 1
        self.more_requests = keep_alive
        access = context.access
        if access is not None:
            access.begin(stream, target)  # Gunicorn's pre_request hook and access-log record
        if not body_complete:
            self.reading = stream
            self.body_deadline = self.loop.time() + (config.timeout_request_body or _OFF)
            self.body_progress = 0
            self.body_limit_left = limit if limit and head.chunked else None
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
            nxt = self.pipeline.pop(0)
            if self.read_paused and len(self.pipeline) < PIPELINE_DEPTH:
                self.resume_reading()
            self.answer(nxt)
        elif not self.accepting or self.eof:
            self.close()
        else:
            self.idle_deadline = self.loop.time() + self.config.timeout_keep_alive
            self.head_deadline = 0.0  # set by the sweep that first sees the next head begun

    def answer(self, stream: HTTPStream) -> None:
        """Answer ``stream`` now: its app call becomes a Task (503 past limit_concurrency)."""
        self.cycle = stream
        self.held = None
        if self.eof:
            stream.eof = True  # the peer half-closed before this (pipelined) request began
        calls = self.calls
        # calls.full() and calls.started(), inline: two calls per request (~300 instructions)
        if calls.limit and calls.running >= calls.limit:
            self.refuse(stream)
            return
        calls.running += 1
        context = self.context
        task = context.spawn(stream.run(self.app))
        if not context.eager or not task.done():
            # a strong reference while it runs (an eagerly started Task may already have
            # finished and started the next pipelined request, whose Task this must not hide)
            self.task = task

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

    def check_timeouts(self, now: float) -> None:
        """Called once a second by the server; see the module docstring for the rules."""
        if self.closed or self.closing or self.transport.get_protocol() is not self:
            return  # done, or handed over (WebSocket): the new protocol keeps its own timers
        reading = self.reading
        if self.cycle is None and reading is None:
            if self.parser.in_head:
                deadline = self.head_deadline
                if not deadline:
                    self.head_deadline = now + (self.config.timeout_request_header or _OFF)
                elif now >= deadline:
                    self.protocol_error(RequestTimeout("request head not received in time"))
            elif now >= self.idle_deadline:
                self.close()
        elif reading is not None and now >= self.body_deadline:
            if self.body_progress >= BODY_PROGRESS or self.read_paused or reading.continue_owed:
                # real progress, or the client is waiting for us: a new window
                self.body_progress = 0
                self.body_deadline = now + (self.config.timeout_request_body or _OFF)
            else:
                self.protocol_error(RequestTimeout("request body not received in time"))

    def is_idle(self) -> bool:
        """No request in progress: nothing of one received (a new connection that has sent
        nothing, or a kept-alive one between requests) and no bytes waiting unread. Closing
        such a connection loses nothing (RFC 9112 9.3: a client retries on a new one)."""
        return (
            self.cycle is None and self.reading is None and not self.closing and not self.closed
            and not self.parser.in_head and not input_waiting(self.transport)
        )

    def shutdown(self) -> None:
        """Graceful drain: no new request here; idle keep-alive connections close at once.

        A connection accepted just before the drain began has not sent its first request yet:
        its client is about to, and would see a reset, so it gets a short grace instead (the
        request is then answered with ``connection: close``). So does a keep-alive connection
        whose next request already sits unread in the socket: closing it would reset it.
        """
        self.accepting = False
        if self.cycle is None and self.reading is None and not self.parser.in_head:
            if self.requests and not input_waiting(self.transport):
                self.close()
            else:
                self.idle_deadline = min(self.idle_deadline, self.loop.time() + DRAIN_GRACE)

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
                self.body_deadline = self.loop.time() + (self.config.timeout_request_body or _OFF)
