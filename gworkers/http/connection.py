"""The shared HTTP/1.1 connection: one asyncio.Protocol for both parser adapters.

It owns the transport (and is the only thing that closes it), keeps requests in order
(pipelining), applies flow control both ways, answers protocol errors, and hands WebSocket
upgrades over. The parser adapters push three calls into it -- ``on_request``, ``on_body``,
``on_complete`` -- and raise ``ProtocolError`` for everything else.

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
from typing import TYPE_CHECKING, Any

from ..errors import (
    ClientDisconnected,
    ContentTooLarge,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
)
from ..flow import WriteFlow
from . import wire
from .cycle import RequestCycle
from .extensions import with_trailers
from .head import METHODS, PLAIN_HEAD, decode_path, read_request

if TYPE_CHECKING:
    from ..server import ServerState

# Buffered request body (per request) past which reading pauses until the app receives.
BODY_HIGH_WATER = 64 * 1024
# Pending response bytes past which the deferred write is flushed at once.
OUT_HIGH_WATER = 64 * 1024
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


class HTTPConnection(WriteFlow, asyncio.Protocol):
    # Slots: every attribute access on the hot path is a fixed offset (a dict of 40 keys stops
    # being shared between instances), and an idle connection is smaller.
    __slots__ = (
        "__weakref__", "accepting", "app", "body_deadline", "body_limit_left", "body_progress",
        "client", "closed", "closing", "concurrency", "config", "cycle", "defaults",
        "drain_waiter", "eof", "extensions", "feeding", "head_deadline", "idle_deadline", "loop",
        "more_requests", "out", "out_size", "parser", "pending_error", "pipeline", "read_paused",
        "reading", "requests", "scheme", "server", "sockname", "starting", "stepped", "task",
        "transport", "trusted", "upgrade_to", "write_paused",
    )

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        self.app = server.app
        self.defaults = server.defaults
        self.transport: Any = None
        self.parser: Any = None
        self.cycle: RequestCycle | None = None  # the request being answered
        self.reading: RequestCycle | None = None  # the request whose body is being parsed
        # requests parsed ahead of the one being answered, at most PIPELINE_DEPTH: a list (56
        # bytes empty) rather than a deque, whose first block is 0.6 KiB on every idle connection
        self.pipeline: list[RequestCycle] = []
        self.out: list | None = None  # writes deferred to the end of this loop iteration
        self.out_size = 0
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
        self.concurrency = server.config.limit_concurrency or 0
        self.task: asyncio.Task | None = None
        self.stepped = True  # False from start() until the request's Task first runs
        self.starting = False  # inside start(): a finished response leaves the next to it
        self.requests = 0
        self.more_requests = True  # the last request read allows another one after it
        self.upgrade_to: Any = None  # the protocol taking the transport over (WebSocket)
        self.eof = False  # the peer half-closed: no request will follow
        self.feeding = False  # inside data_received: more requests of this read may follow

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        server = self.server
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
        self.extensions = server.extensions_for(transport)
        self.trusted = server.proxy.trusts(self.client)
        self.parser = server.parser_class(self, self.config)
        now = self.loop.time()
        self.idle_deadline = self.head_deadline = now + (self.config.timeout_request_header or _OFF)
        if self.config.timeout_keep_alive <= 0:
            self.accepting = False  # Gunicorn's keepalive = 0: one request per connection
        server.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self.feeding = True
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self.protocol_error(exc)
        finally:
            self.feeding = False

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
                reading.feed_disconnect()
                if reading is not self.cycle:
                    try:
                        self.pipeline.remove(reading)
                    except ValueError:
                        pass
            cycle = self.cycle
            if cycle.waiter is not None:
                cycle._wake()
        # TLS transports close themselves on EOF whatever we answer (and warn if we say True).
        return self.scheme != "https"

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.out = None
        for cycle in (self.cycle, self.reading, *self.pipeline):
            if cycle is not None:
                cycle.feed_disconnect()
        self.pipeline.clear()
        self.release_drain()
        self.server.connection_lost(self)

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
        server = self.server
        root = config.root_path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = decode_path(raw_path)
        state = server.lifespan_state
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
            server.proxy.apply(scope, self, notable)
        if head is PLAIN_HEAD:  # no body, keep-alive, no upgrade, nothing expected
            body_complete = True
            cycle = RequestCycle(self, scope, self.accepting, False, True)
        else:
            if head.upgrade is not None and head.upgrade == b"websocket":
                upgrader = server.websocket_upgrade
                if upgrader is not None and self.cycle is None and not self.pipeline:
                    if self.concurrency and server.in_flight >= self.concurrency:
                        raise ServiceUnavailable("concurrency limit reached")
                    if upgrader(self, scope, head):
                        server.upgrade_started()
                        return True
            body_complete = not head.chunked and not head.content_length
            cycle = RequestCycle(
                self,
                scope,
                head.keep_alive and self.accepting and head.upgrade is None,
                head.expect_continue and not body_complete,
                body_complete,
            )
        self.requests += 1
        self.more_requests = cycle.keep_alive
        access = server.access
        if access is not None:
            access.begin(cycle, target)  # Gunicorn's pre_request hook and access-log record
        if not body_complete:
            self.reading = cycle
            self.body_deadline = self.loop.time() + (config.timeout_request_body or _OFF)
            self.body_progress = 0
            self.body_limit_left = limit if limit and head.chunked else None
        if self.cycle is None:
            self.start(cycle)
        else:
            self.pipeline.append(cycle)
            if len(self.pipeline) >= PIPELINE_DEPTH:
                self.pause_reading()
        server.total_requests += 1  # server.request_started(), inline: it is every request
        if server.max_requests and server.total_requests >= server.max_requests:
            server.max_requests_reached()
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
        if cycle is None or cycle.response_complete or cycle.disconnected:
            return  # the app is done with it: discard
        cycle.feed_body(data)
        if cycle.body_size > BODY_HIGH_WATER and not self.read_paused:
            self.pause_reading()

    def on_complete(self) -> bool:
        """The request's body is complete. False: read no further request on this connection
        (RFC 9112 9.6: after ``close`` the server MUST NOT process further requests)."""
        cycle = self.reading
        if cycle is not None:
            self.reading = None
            cycle.feed_complete()
        return self.more_requests

    def on_upgrade(self, rest: bytes) -> None:
        """The parser saw the end of an upgrade request's head: hand the transport over.

        ``rest`` holds the bytes received after the head; the new protocol gets them as they
        are (the request is never re-serialised). It registers before this connection
        leaves the registry, so a draining server never sees the worker idle in between.
        """
        protocol, self.upgrade_to = self.upgrade_to, None
        if protocol is None or self.closed:
            return
        if self.out:
            self.flush()
        self.closed = True  # this protocol no longer owns the transport
        self.transport.set_protocol(protocol)
        self.server.connection_made(protocol)
        self.server.connection_lost(self)
        protocol.start(rest)

    # ------------------------------------------------------------------ from the cycle
    def want_body(self) -> None:
        if self.read_paused and len(self.pipeline) < PIPELINE_DEPTH:
            self.resume_reading()

    def body_consumed(self) -> None:
        if self.read_paused and len(self.pipeline) < PIPELINE_DEPTH:
            self.resume_reading()

    async def drain(self) -> None:
        if self.out:
            self.flush()
        if self.write_paused and not self.closed:
            waiter = self.drain_waiter
            if waiter is None:
                waiter = self.drain_waiter = self.loop.create_future()
            await waiter

    def response_done(self, cycle: RequestCycle) -> None:
        """The response is complete: close, or move to the next request."""
        access = self.server.access  # server.request_finished(cycle), inline
        if access is not None:
            access.finish(cycle)
        if cycle.waiter is not None:
            cycle._wake()
        if not cycle.keep_alive or self.pending_error is not None and not self.pipeline:
            if self.reading is cycle:
                self.reading = None
            self.pipeline.clear()
            self.finish_with_error()
            return
        if self.reading is cycle:
            # The app answered without reading the whole body: keep parsing and discard it
            # (reading may have paused on the unread buffer; nothing would ever resume it).
            cycle.body = []
            cycle.body_size = 0
            self.resume_reading()
        self.cycle = None
        if self.pipeline:
            if not self.starting:
                self.start(self.next_pipelined())
            # else: inside start(), whose loop starts the next one once this Task's step returns
        elif not self.accepting or self.eof:
            self.close()
        else:
            self.idle_deadline = self.loop.time() + self.config.timeout_keep_alive
            self.head_deadline = 0.0  # set by the sweep that first sees the next head begun

    # ------------------------------------------------------------------ running the app
    def next_pipelined(self) -> RequestCycle:
        nxt = self.pipeline.pop(0)
        if self.read_paused and len(self.pipeline) < PIPELINE_DEPTH:
            self.resume_reading()
        return nxt

    def start(self, cycle: RequestCycle) -> None:
        """Run the app for ``cycle``, then for the pipelined requests it answered its way through.

        An eagerly started Task (3.12+) can answer before ``spawn`` returns; its response_done
        leaves the next pipelined request to this loop instead of starting it from inside the
        Task, so a burst of pipelined requests is a loop here, not a recursion through nested
        Task starts that overflows the stack after about a hundred requests.
        """
        server = self.server
        outer = self.starting
        self.starting = True
        try:
            while True:
                self.cycle = cycle
                if self.concurrency and server.in_flight >= self.concurrency:
                    self.refuse(cycle)
                    return
                server.in_flight += 1
                self.stepped = False
                task = server.spawn(self.run_asgi(cycle))
                if not server.eager or not task.done():
                    self.task = task  # a strong reference while it runs
                if self.cycle is not None or not self.pipeline:
                    return
                cycle = self.next_pipelined()
        finally:
            self.starting = outer

    async def run_asgi(self, cycle: RequestCycle) -> None:
        self.stepped = True
        try:
            await self.app(cycle.scope, cycle.receive, cycle.send)
        except BaseException as exc:
            self.app_failed(cycle, exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        else:
            if not cycle.response_complete:
                self.app_failed(cycle, None)
        finally:
            # in progress until the app call returns, whatever happened to the connection
            self.server.in_flight -= 1

    def refuse(self, cycle: RequestCycle) -> None:
        """Past ``limit_concurrency``: 503 and close, without calling the app."""
        cycle.response_complete = True
        cycle.keep_alive = False
        if self.reading is cycle:
            self.reading = None
        self.pipeline.clear()
        self.pause_reading()
        self.write(self.error_bytes(503))
        if cycle.access is not None:
            cycle.access.response(503, ())
        self.server.request_finished(cycle)
        self.close()

    def app_failed(self, cycle: RequestCycle, exc: BaseException | None) -> None:
        """500 if nothing was sent yet, else close: a half-sent response cannot be mended."""
        log = self.server.log
        if exc is None:
            if not cycle.disconnected:
                log.error("ASGI app returned without completing the response")
        elif isinstance(exc, asyncio.CancelledError | ClientDisconnected) and cycle.disconnected:
            log.debug("ASGI app stopped: client disconnected")
        elif isinstance(exc, SystemExit | KeyboardInterrupt):
            pass  # the process is leaving (heartbeat abort): not the app's error
        else:
            log.error("Exception in ASGI application", exc_info=exc)
        if cycle.response_complete:
            return
        cycle.response_complete = True
        if self.closed:
            self.server.request_finished(cycle)
            return
        if (cycle.status == 0 or cycle.head) and not cycle.disconnected:
            # nothing of the response is on the wire yet (its head is held until the body)
            self.write(self.error_bytes(500))
            if cycle.access is not None:
                cycle.access.response(500, ())  # what the access log must say was sent
        cycle.keep_alive = False
        cycle.feed_disconnect()
        self.server.request_finished(cycle)
        self.pipeline.clear()
        self.close()

    async def send_extension(self, cycle: RequestCycle, message: dict) -> None:
        handler = self.server.extension_handlers.get(message["type"])
        if handler is None:
            from ..errors import AppProtocolError

            raise AppProtocolError(f"unexpected ASGI message type {message['type']!r}")
        await handler(self, cycle, message)

    # ------------------------------------------------------------------ errors and timeouts
    def error_bytes(self, status: int, message: str = "") -> bytes:
        body = (message or "").encode("utf-8", "replace")
        if not body:
            from http import HTTPStatus

            body = HTTPStatus(status).phrase.encode() if status in wire.STATUS_LINES else b""
        return b"%b%bcontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%b" % (
            wire.status_line(status),
            self.defaults.block,
            len(body),
            body,
        )

    def protocol_error(self, exc: ProtocolError) -> None:
        """Answer a broken request with its status and close; never call the app for it."""
        self.pause_reading()
        reading = self.reading
        if reading is not None:
            self.reading = None
            if reading is self.cycle or reading.response_complete:
                # broken body of the request the app is answering (or has answered)
                reading.feed_disconnect()
                if reading.status == 0 and not reading.response_complete:
                    reading.response_complete = True
                    self.write(self.error_bytes(exc.status))
                self.server.log.debug("Malformed request body: %s", exc)
                self.close()
                return
            # a pipelined request not started yet: never run it; answer after those before it
            try:
                self.pipeline.remove(reading)
            except ValueError:
                pass
        self.server.log.debug("Malformed request: %s", exc)
        if self.cycle is not None:
            # answer the requests before the broken one first
            self.pending_error = exc
            return
        self.pending_error = exc
        self.finish_with_error()

    def finish_with_error(self) -> None:
        exc = self.pending_error
        if exc is not None and not self.closed:
            self.pending_error = None
            self.write(self.error_bytes(exc.status))
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
            if self.body_progress >= BODY_PROGRESS or self.read_paused or reading.expect_continue:
                # real progress, or the client is waiting for us: a new window
                self.body_progress = 0
                self.body_deadline = now + (self.config.timeout_request_body or _OFF)
            else:
                self.protocol_error(RequestTimeout("request body not received in time"))

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

    # ------------------------------------------------------------------ flow control, writes
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

    def write(self, data: bytes) -> None:
        out = self.out
        if out is None:
            if self.closed:
                return
            self.out = [data]
            self.out_size = len(data)
            self.server.flusher.add(self)
        else:
            out.append(data)
            self.out_size += len(data)
        if self.out_size > OUT_HIGH_WATER:
            self.flush()

    def write_last(self, data: bytes) -> None:
        """The last bytes of a response: written at once when nothing else is pending or may
        follow in this loop pass (no pipelined request queued, none being parsed), so the
        common keep-alive request skips the flusher. Otherwise deferred like any write, and a
        pipelined burst still leaves in one write."""
        out = self.out
        if out is None:
            if not self.pipeline and not self.feeding and not self.closed:
                self.transport.write(data)
            else:
                self.write(data)
        else:
            out.append(data)
            self.out_size += len(data)
            if self.out_size > OUT_HIGH_WATER:
                self.flush()

    def write_parts(self, parts: Any) -> None:
        """Several buffers of one message (a chunk's size line, data, CRLF) without copying.

        A large message with nothing pending goes out in one ``writelines`` at once; anything
        else joins the pending list in one step.
        """
        size = sum(map(len, parts))
        out = self.out
        if out is None:
            if self.closed:
                return
            if size > OUT_HIGH_WATER:
                self.transport.writelines(parts)
                return
            self.out = list(parts)
            self.out_size = size
            self.server.flusher.add(self)
        else:
            out.extend(parts)
            self.out_size += size
            if self.out_size > OUT_HIGH_WATER:
                self.flush()

    def flush(self) -> None:
        out = self.out
        if out is not None:
            self.out = None
            if not self.closed:
                if len(out) == 1:
                    self.transport.write(out[0])
                else:
                    self.transport.writelines(out)
        if self.closing and not self.closed:
            self.closed = True
            self.transport.close()

    def close(self) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        if self.out is None:
            self.closed = True
            self.transport.close()
