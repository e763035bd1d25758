"""The HTTP/2 connection: an asyncio protocol around ``H2Core``, one ``HTTPStream`` per stream.

Each request stream gets a ``StreamSink`` and an ``HTTPStream`` whose app call is its own Task;
request bodies are pushed in as they arrive, ``RST_STREAM`` and connection loss become
``http.disconnect``. Output from every stream is gathered and written once per loop pass.

Limits, besides those ``H2Core`` keeps (frame floods, header block size):

* ``http2_max_concurrent_streams`` counts open streams (RFC 9113 5.1.2: a stream closed both
  ways no longer counts, even while its app call goes on after the response); past it a new
  stream is refused (REFUSED_STREAM). App calls still running are capped apart, at
  ``CALLS_PER_STREAM`` times the limit: a stream the client reset still counts there until
  its app call returns, so opening and resetting streams in a loop (rapid reset,
  CVE-2023-44487) never runs more app calls at once than that. More than ``RESET_BUDGET``
  streams in a second reset while their app call runs, or refused, end the connection
  (ENHANCE_YOUR_CALM).
* ``limit_concurrency`` answers 503 on the stream, ``limit_request_body`` 413 (or resets the
  stream if the response has begun), the header limits 431/414, as on HTTP/1.1.
* While the transport's write buffer is over its high-water mark (a peer that does not read),
  nothing more is read from it: its PINGs and SETTINGS cannot make us buffer answers.
* A response stalled on a closed flow-control window, or a request body that stops arriving,
  for ``timeout_request_body`` seconds ends that stream (``deadlines.py``): other streams and
  connections go on.
* Idle (no stream) for ``timeout_keep_alive`` seconds: GOAWAY and close. On a drain: GOAWAY
  in two steps (``H2Core.drain``: no stream in flight is refused), the streams taken finish,
  later ones are refused, then close. On a quick exit (``hurry``): the open streams are reset,
  another GOAWAY, close. No PING of ours but the drain's: an idle connection is closed by its
  timeout, not probed (the peer's PINGs are answered, within the flood budget).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...context import WorkerContext
from ...errors import ProtocolError
from ...flow import WriteFlow, transport_addresses
from ..h1.limits import Limits
from ..stream import AWAITING_START, HTTPStream
from .core import H2Core
from .deadlines import check_streams
from .frames import ErrorCodes
from .replies import answer, with_defaults
from .request import Malformed, Request, read_request
from .scope import http_scope
from .sink import StreamSink
from .websocket import StreamChannel, open_tunnel, tunnels_window

# Resets of streams whose app call was still running, per second, before the connection ends.
RESET_BUDGET = 200
# App calls one connection may run at once, per stream it may have open: room for calls that go
# on after their response (a client at the stream limit opens a new stream as each one ends).
CALLS_PER_STREAM = 2
_OFF = float("inf")


class H2Protocol(WriteFlow, asyncio.Protocol):
    """One HTTP/2 connection (see the module docstring)."""

    __slots__ = ("__weakref__", "blocked", "client", "closed", "config", "context", "core",
                 "drain_waiter", "extensions", "flush_handle", "idle_deadline", "last_headers",
                 "last_request", "limits", "lingering", "loop", "max_calls", "max_streams",
                 "receiving_now", "resets", "running", "scheme", "sockname", "streams", "task",
                 "transport", "trusted", "tunnels", "write_paused")

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.config = config = context.config
        self.loop = context.loop
        self.core = H2Core(config, self)
        self.limits = Limits(config)
        self.max_streams = config.http2_max_concurrent_streams
        self.max_calls = CALLS_PER_STREAM * self.max_streams
        self.streams: dict[int, StreamSink] = {}
        self.blocked: dict[int, StreamSink] = {}  # streams waiting for window, in order
        self.tunnels: dict[int, StreamChannel] = {}  # WebSockets (RFC 8441), websocket.py
        self.running: set[asyncio.Task] = set()  # app calls of this connection not returned
        self.resets = 0
        self.transport: Any = None
        self.client: tuple | None = None
        self.sockname: tuple | None = None
        self.scheme = "http"
        self.extensions: dict = {}
        self.trusted = False
        self.closed = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future | None = None
        self.flush_handle: asyncio.Handle | None = None
        self.receiving_now = False
        self.lingering = False  # GOAWAY and our FIN sent after an error; reading to drop
        self.idle_deadline = 0.0
        self.task = None  # (the server cancels ``conn.task`` when a drain runs out of time)
        self.last_headers: list | None = None  # the last header block read, and its request
        self.last_request: Request | None = None

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        """A connection that speaks HTTP/2 from its first byte (ALPN h2, or the preface)."""
        self._attach(transport)
        self.core.initiate()
        self.flush()

    def _attach(self, transport: Any, register: bool = True) -> None:
        self.transport = transport
        self.client, self.sockname, tls = transport_addresses(transport)
        if tls:
            self.scheme = "https"
        context = self.context
        self.extensions = context.extensions_for(transport)
        self.trusted = context.proxy.trusts(self.client)
        self.idle_deadline = self.loop.time() + (self.config.timeout_keep_alive or _OFF)
        if register:
            context.registry.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self.receiving_now = True
        try:
            self.core.receive(data)
        finally:
            self.receiving_now = False
        self.flush()

    def eof_received(self) -> bool | None:
        return None  # nothing more can arrive (not even a WINDOW_UPDATE): close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        self._disconnect_all()
        self.release_drain()
        self.context.registry.connection_lost(self)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.transport.pause_reading()  # a peer that does not read gets nothing more read

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.closed:
            self.transport.resume_reading()

    # ------------------------------------------------------------------ H2Core's handler
    def request(self, stream_id: int, headers: list, ended: bool) -> None:
        core = self.core
        if core.draining or len(self.streams) + len(self.tunnels) >= self.max_streams \
                or len(self.running) >= self.max_calls:
            core.reset(stream_id, ErrorCodes.REFUSED_STREAM)
            self._count_reset()  # a client that knows the limit and keeps opening: same budget
            return
        try:
            if headers is self.last_headers:
                # the decoder's cache hands back the same list for a repeated header block
                # (hpack_codec.py): it checks to the same request. -4 us a request of 16
                # (bench/h2hot.py plaintext, 1 and 100 streams)
                request = self.last_request
            else:
                request = read_request(headers, self.limits, self.config.limit_request_body)
                self.last_headers, self.last_request = headers, request
            if ended and request.content_length:
                raise Malformed("content-length without content")  # RFC 9113 8.1.1
        except Malformed as exc:
            self.context.log.debug("Malformed HTTP/2 request: %s", exc)
            core.reset(stream_id, ErrorCodes.PROTOCOL_ERROR)
            return
        except ProtocolError as exc:
            self.context.log.debug("Refused HTTP/2 request: %s", exc)
            self.answer(stream_id, exc.status, reset_body=not ended)
            return
        if request.protocol is not None:
            open_tunnel(self, stream_id, request, ended)
            return
        self._open(stream_id, request, ended)

    def tunnel_closed(self, channel: StreamChannel) -> None:
        """A WebSocket stream is over (``StreamChannel.finish``)."""
        if self.tunnels.pop(channel.id, None) is not None and not self.streams:
            self._idle()

    def _open(self, stream_id: int, request: Request, ended: bool) -> None:
        """Start the app call for a checked request."""
        context = self.context
        calls = context.calls
        if calls.full():
            self.answer(stream_id, 503, reset_body=not ended)
            return
        scope = http_scope(self, request)
        sink = StreamSink(self, stream_id, not ended)
        sink.length = request.content_length
        stream = sink.stream = HTTPStream(sink, scope, context, ended,
                                          request.expect_continue and not ended)
        self.streams[stream_id] = sink
        if context.access is not None:
            context.access.begin(stream, request.path)
        calls.request_started()
        calls.started()
        task = context.spawn(stream.run(context.app))
        if not task.done():
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    def data(self, stream_id: int, data: bytes, size: int) -> None:
        sink = self.streams.get(stream_id)
        if sink is None or not sink.receiving:
            tunnel = self.tunnels.get(stream_id) if self.tunnels else None
            if tunnel is not None:
                tunnel.received(data, size)
                return
            self.core.open_window(stream_id, size)  # nobody reads it: let the peer finish
            return
        stream = sink.stream
        received = sink.received = sink.received + len(data)
        if sink.length is not None and received > sink.length:
            self.malformed(stream_id, "more content than its content-length")
            return
        limit = self.config.limit_request_body
        if limit and sink.received > limit:
            self.end_upload(sink, 413)
            return
        sink.body_progress += len(data)
        if size > len(data):
            sink.consumed(size - len(data))  # padding: never handed to the app
        if stream.disconnected:
            sink.consumed(len(data))
            return
        stream.on_body(data)

    def end_upload(self, sink: StreamSink, status: int) -> None:
        """A request body we stop taking (413 past ``limit_request_body``, 408 late): answer
        ``status`` if the response has not begun, else reset the stream."""
        sink.receiving = False
        stream = sink.stream
        if stream.state is AWAITING_START and not sink.sent_head:
            stream.on_disconnect()
            self.answer(sink.id, status, reset_body=True)
            stream.answered(status)
            sink.ended = True
            self.response_ended(sink)
        else:
            self.core.reset(sink.id, ErrorCodes.CANCEL)
            self.streams.pop(sink.id, None)
            sink.gone()
            stream.on_disconnect()

    def end(self, stream_id: int) -> None:
        sink = self.streams.get(stream_id)
        if sink is None:
            tunnel = self.tunnels.get(stream_id) if self.tunnels else None
            if tunnel is not None:
                tunnel.end_received()
            return
        if sink.receiving and sink.length is not None and sink.received != sink.length:
            self.malformed(stream_id, "less content than its content-length")
            return
        sink.receiving = False
        sink.stream.on_body_end()
        if sink.ended:
            self._forget(sink)

    def malformed(self, stream_id: int, reason: str) -> None:
        """A request found malformed after its app call began (RFC 9113 8.1.1): the stream
        is reset with PROTOCOL_ERROR and the app hears ``http.disconnect``."""
        sink = self.streams.pop(stream_id, None)
        if sink is None:
            return
        self.context.log.debug("Malformed HTTP/2 request: %s", reason)
        self.core.reset(stream_id, ErrorCodes.PROTOCOL_ERROR)
        self.blocked.pop(stream_id, None)
        sink.receiving = False
        sink.gone()
        sink.stream.on_disconnect()

    def reset(self, stream_id: int, code: int) -> None:
        sink = self.streams.pop(stream_id, None)
        if sink is None:
            tunnel = self.tunnels.get(stream_id) if self.tunnels else None
            if tunnel is not None:
                tunnel.ended = True
                tunnel.finish()
            return
        self.blocked.pop(stream_id, None)
        stream = sink.stream
        if not sink.ended:
            self._count_reset()
        sink.receiving = False
        sink.gone()
        stream.on_disconnect()

    def _count_reset(self) -> None:
        self.resets += 1
        if self.resets > RESET_BUDGET:
            self.core.terminate(ErrorCodes.ENHANCE_YOUR_CALM, "too many streams reset or refused")

    def window(self, stream_id: int) -> None:
        if self.tunnels:
            tunnels_window(self.tunnels, stream_id)
        blocked = self.blocked
        if not blocked:
            return
        if stream_id:
            sink = blocked.get(stream_id)
            if sink is not None:
                sink.window_opened()
            return
        for sink in list(blocked.values()):
            sink.window_opened()
            if self.core.window_for(sink.id) <= 0 and sink.pending:
                break  # the connection window is spent: the rest wait for the next one

    def peer_goaway(self, code: int) -> None:
        """The client will open no more streams; an error code means it is gone already."""
        if code:
            self.terminated(code, "GOAWAY from the peer")
            return
        self.core.draining = True
        self.drained()

    def terminated(self, code: int, reason: str) -> None:
        """The connection ends now (a protocol error, a flood): GOAWAY is queued."""
        log = self.context.log
        if code == ErrorCodes.ENHANCE_YOUR_CALM:
            log.warning("HTTP/2 connection from %s closed: %s", self.client, reason)
        else:
            log.debug("HTTP/2 connection closed: %s (%s)", reason, code)
        self.core.closed = True
        self._disconnect_all()
        transport = self.transport
        if transport.can_write_eof() and not self.closed:
            # a lingering close: GOAWAY, then our FIN; what the peer still sends is read and
            # dropped until it closes (or the next tick), so its kernel does not discard our
            # GOAWAY on a reset caused by unread bytes
            self.flush()
            transport.write_eof()
            self.lingering = True
        else:
            self.close()

    # ------------------------------------------------------------------ from the sinks
    answer = answer  # the server's own small reply on a stream (413, 431, 500, 503 ...)
    with_defaults = with_defaults  # response fields with the default ones (server, date ...)

    def response_ended(self, sink: StreamSink) -> None:
        """Our side of the stream is closed; an upload nobody will read is stopped."""
        self.blocked.pop(sink.id, None)
        if sink.receiving:
            sink.receiving = False
            if self.core.stream_open(sink.id):
                self.core.reset(sink.id, ErrorCodes.NO_ERROR)
        self._forget(sink)
        self.flush_soon()

    def _forget(self, sink: StreamSink) -> None:
        if self.streams.get(sink.id) is sink:
            del self.streams[sink.id]
        if not self.streams and not self.tunnels:
            self._idle()

    def _idle(self) -> None:
        """No stream left: the keep-alive clock starts, a draining connection closes."""
        self.idle_deadline = self.loop.time() + (self.config.timeout_keep_alive or _OFF)
        if self.core.draining:
            self.close()

    async def drain(self) -> None:
        """Wait until the transport takes writes again."""
        self.flush()
        await self.wait_writable()

    # ------------------------------------------------------------------ output
    def flush_soon(self) -> None:
        if self.flush_handle is None and not self.receiving_now and not self.closed:
            self.flush_handle = self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_handle = None
        if self.closed or self.lingering:
            return
        data = self.core.data_to_send()
        if data:
            self.transport.write(data)

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        self.transport.close()

    def _disconnect_all(self, reset: bool = False) -> None:
        streams = list(self.streams.values())
        self.streams.clear()
        self.blocked.clear()
        for tunnel in list(self.tunnels.values()):
            if reset:
                tunnel.abort()
            tunnel.ended = True
            tunnel.finish()
        for sink in streams:
            if reset:
                self.core.reset(sink.id, ErrorCodes.CANCEL)
            sink.receiving = False
            sink.gone()
            sink.stream.on_disconnect()

    # ------------------------------------------------------------------ server calls
    def check_timeouts(self, now: float) -> None:
        """Once a second: a new flood-budget window, stalled streams, the idle deadline."""
        if self.closed:
            return
        if self.core.closed:
            self.close()  # the lingering close after a connection error ends here
            return
        self.core.new_budget_window()
        self.core.drain_tick()
        self.resets = 0
        if self.streams:
            check_streams(self, now)
        if not self.streams and not self.tunnels and not self.running \
                and now >= self.idle_deadline:
            self.shutdown()

    def shutdown(self) -> None:
        """Drain: GOAWAY (``H2Core.drain``); close once the streams taken have finished."""
        if self.streams or self.tunnels:
            self.core.drain()
            self.flush()  # (a WebSocket's session closes itself: it is in the registry too)
            return
        self.core.final_goaway()
        self.close()

    def drained(self) -> None:
        """The final GOAWAY is out: close now if no stream is left (else ``_idle`` will)."""
        if self.streams or self.tunnels:
            return self.flush_soon()
        self.close()

    def hurry(self) -> None:
        """A quick exit (SIGINT/SIGQUIT): the open streams are reset (CANCEL: the client knows
        its response is cut) after a last GOAWAY naming the last stream taken; we close once
        those frames have left (the server aborts what is left after its grace)."""
        if self.closed or self.core.closed:
            return
        self.core.final_goaway()  # (an idle connection is closed by it: nothing else to say)
        if self.closed:
            return
        self.core.goodbye()  # (queued before the resets end the last stream, which closes)
        self._disconnect_all(reset=True)
        self.close()
