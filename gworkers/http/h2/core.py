"""The HTTP/2 server connection without I/O (RFC 9113): frames in, calls on a handler out.

``H2Core`` is fed bytes with ``receive``; what they mean comes out as calls on a ``handler``
(the asyncio connection): ``request``, ``data``, ``end``, ``malformed``, ``reset``, ``window``,
``peer_goaway``, ``terminated``, ``drained``. What we answer goes in through the send methods
and leaves with ``data_to_send``. Nothing here touches a socket, a loop or a task.

Why our own state machine and not the ``h2`` package's: h2 spent three quarters of a request's
CPU (frame objects, an event object per happening, a generic state table, HPACK with logging);
this reads each frame header with one ``struct`` call and acts on it in place. The streams
module (``streams.py``) keeps what a stream is; the writing half is ``sending.py``, the HPACK
codec ``hpack_codec.py``.

Decisions, and why:

* Our SETTINGS go out in the preface and apply at once, except that until the client has
  acknowledged them a new stream may receive the default 65,535 bytes (what the client may
  assume until then). SETTINGS_MAX_CONCURRENT_STREAMS is the handler's to enforce
  (REFUSED_STREAM, RFC 9113 5.1.2).
* Inbound flow control is by hand: a stream's window opens when the app has read the bytes
  (``open_window``), so an unread upload stalls that stream only; the connection window is
  large and reopened as bytes arrive (the stream windows already bound what is buffered).
* Frames on a stream we reset are ignored (5.1: they may be in flight); on a stream closed
  otherwise, DATA and HEADERS are a stream error STREAM_CLOSED. The recent closed streams are
  remembered for this (``streams.ClosedStreams``); an older one is taken as closed.
* A frame that provokes a RST_STREAM counts against the flood budget, as control frames do:
  a client cannot make us write frames without bound (MadeYouReset, CVE-2025-8671).
* A header block is capped at SETTINGS_MAX_HEADER_LIST_SIZE while it arrives, before it is
  decoded (CONTINUATION flood, CVE-2024-27316: an encoded block is never larger than its list).
"""

from __future__ import annotations

from typing import Any

from .frames import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEAD,
    HEADERS,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    ErrorCodes,
    Flood,
    FloodBudget,
    FrameError,
    StreamError,
    frame,
    rst_stream,
    window_update,
)
from .handler import Handler
from .hpack_codec import Decoder, Encoder, HeaderListTooLarge, HPACKError
from .request import Malformed, check_trailers
from .sending import DRAIN_PING, Sending
from .settings import PeerSettings, local_settings, shift_windows, upgrade_payload
from .streams import (
    CLOSED,
    CLOSED_BY_END,
    HALF_CLOSED_REMOTE,
    OPEN,
    RESET_BY_US,
    ClosedStreams,
    HeaderBlock,
    Stream,
)

# The connection-level receive window we keep open (the stream windows bound what is buffered).
CONNECTION_WINDOW = 16 * 1024 * 1024
# Frames bringing no request or body a connection may send per second (frames.FloodBudget).
FLOOD_BUDGET = 1000
_E = ErrorCodes


class H2Core(Sending):
    """One HTTP/2 server connection's protocol state (see the module docstring)."""

    __slots__ = ("acked", "block", "block_limit", "budget", "buffer", "closed", "closed_streams",
                 "conn_unacked", "decoder", "drain_ticks", "draining", "encoder", "handler", "last_stream",
                 "local", "max_frame", "need", "out", "peer", "preface", "recv_window",
                 "send_window", "streams", "tail")

    def __init__(self, config: Any, handler: Handler) -> None:
        self.handler = handler
        self.local = local_settings(config)
        self.max_frame = config.http2_max_frame_size  # the largest frame we take
        self.block_limit = config.http2_max_header_list_size
        self.decoder = Decoder(config.http2_max_header_list_size)
        self.encoder = Encoder()
        self.peer = PeerSettings()
        self.budget = FloodBudget(FLOOD_BUDGET)
        self.streams: dict[int, Stream] = {}
        self.closed_streams = ClosedStreams()
        self.last_stream = 0  # the highest stream id the client opened (GOAWAY's last id)
        self.send_window = self.recv_window = 65535  # the connection's windows
        self.conn_unacked = 0
        self.acked = False  # the client acknowledged our SETTINGS
        self.preface = True  # the client preface is still to come
        self.block: HeaderBlock | None = None  # a header block under way
        self.buffer: bytearray | None = None  # the start of a frame not yet whole
        self.need = 0  # bytes ``buffer`` must reach before it is read
        self.out: list = []  # frames to write, in order
        self.tail = b""  # the last GOAWAY of a quick exit, after everything else
        self.draining = False  # the final GOAWAY is sent: new streams are refused
        self.drain_ticks = -1  # a drain's first GOAWAY is sent: ticks since (sending.py)
        self.closed = False

    # ------------------------------------------------------------------ start
    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        """Our preface (SETTINGS), then a connection window wider than the default 64 KiB.

        ``upgrade_settings``: the HTTP2-Settings of an ``Upgrade: h2c`` request, whose request
        becomes stream 1 (half closed: its body, if any, came over HTTP/1.1). The 101 answer
        acknowledges them (RFC 7540 3.2.1): no SETTINGS ACK.
        """
        self.out.append(self.local.frame + window_update(0, CONNECTION_WINDOW - 65535))
        self.recv_window = CONNECTION_WINDOW
        if upgrade_settings is None:
            return
        try:
            self.peer.apply(upgrade_payload(upgrade_settings), self.encoder)
        except FrameError as exc:
            self.terminate(exc.code, str(exc))
            return
        self.streams[1] = Stream(self.peer.initial_window, self._receive_window_now(),
                                 HALF_CLOSED_REMOTE)
        self.last_stream = 1

    # ------------------------------------------------------------------ receive
    def receive(self, data: bytes) -> None:
        """Feed bytes; the handler hears what they mean. Errors end the connection here."""
        if self.closed:
            return
        buffer = self.buffer
        if buffer is not None:
            buffer += data
            if len(buffer) < self.need:
                return
            data = bytes(buffer)
            self.buffer = None
        try:
            if self.preface:
                data = self._preface(data)
                if not data:
                    return
            self._frames(data)
        except FrameError as exc:
            self.terminate(exc.code, str(exc))
            return
        if self.conn_unacked >= CONNECTION_WINDOW // 2 and not self.closed:
            self.out.append(window_update(0, self.conn_unacked))
            self.recv_window += self.conn_unacked
            self.conn_unacked = 0

    def _preface(self, data: bytes) -> bytes:
        """The client preface and the header of the frame after it, which must be SETTINGS
        (RFC 9113 3.4): both are waited for, so the check is made once, here."""
        if not PREFACE.startswith(data[:len(PREFACE)]):
            raise FrameError("invalid connection preface")
        if len(data) < len(PREFACE) + 9:
            self.buffer, self.need = bytearray(data), len(PREFACE) + 9
            return b""
        if data[len(PREFACE) + 3] != SETTINGS:
            raise FrameError("the client preface is not followed by SETTINGS")
        self.preface = False
        return data[len(PREFACE):]

    def _frames(self, data: bytes) -> None:
        """Every whole frame in ``data``; the start of the next one waits in ``buffer``."""
        pos, end = 0, len(data)
        head = HEAD.unpack_from
        while end - pos >= 9:
            high, low, kind, flags, stream_id = head(data, pos)
            length = high << 8 | low
            if length > self.max_frame:
                raise FrameError("frame larger than SETTINGS_MAX_FRAME_SIZE", _E.FRAME_SIZE_ERROR)
            start = pos + 9
            if start + length > end:
                self.buffer, self.need = bytearray(data[pos:]), 9 + length
                return
            pos = start + length
            stream_id &= 0x7FFFFFFF
            try:
                if kind == HEADERS and self.block is None:
                    self._headers(flags, stream_id, data[start:pos])
                elif kind == DATA and self.block is None:
                    self._data(flags, stream_id, data[start:pos], length)
                else:
                    self._other(kind, flags, stream_id, data[start:pos])
            except StreamError as exc:
                self._stream_error(stream_id, exc)
            if self.closed:
                return
        if pos < end:
            self.buffer, self.need = bytearray(data[pos:]), 9

    def _other(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        """Every frame but a HEADERS or DATA outside a header block."""
        if kind == CONTINUATION:
            self._continuation(flags, stream_id, payload)
            return
        if self.block is not None:
            raise FrameError("a frame other than CONTINUATION inside a header block (6.10)")
        if kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
            return
        self.budget.idle()
        if kind == SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == PING:
            if stream_id:
                raise FrameError("PING on a stream")
            if len(payload) != 8:
                raise FrameError("PING payload not 8 bytes", _E.FRAME_SIZE_ERROR)
            if not flags & ACK:
                self.out.append(frame(PING, ACK, 0, payload))
            elif payload == DRAIN_PING:
                self.final_goaway()
        elif kind == RST_STREAM:
            self._rst_stream(stream_id, payload)
        elif kind == PRIORITY:
            self._priority(stream_id, payload)
        elif kind == GOAWAY:
            if stream_id:
                raise FrameError("GOAWAY on a stream")
            if len(payload) < 8:
                raise FrameError("GOAWAY shorter than 8 bytes", _E.FRAME_SIZE_ERROR)
            self.handler.peer_goaway(int.from_bytes(payload[4:8], "big"))
        elif kind <= CONTINUATION:  # PUSH_PROMISE (other types are ignored: 5.5)
            raise FrameError("PUSH_PROMISE from a client (8.4)")

    def _priority(self, stream_id: int, payload: bytes) -> None:
        """Checked, not acted on (RFC 9113 5.3.2). Its errors are stream errors (6.3, 5.3.1),
        but on an idle stream, which may not be reset (6.4), connection errors."""
        if not stream_id:
            raise FrameError("PRIORITY on stream 0")
        error = StreamError if stream_id <= self.last_stream else FrameError
        if len(payload) != 5:
            raise error("PRIORITY payload not 5 bytes", _E.FRAME_SIZE_ERROR)
        if int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == stream_id:
            raise error("a stream depends on itself (5.3.1)", _E.PROTOCOL_ERROR)

    # ------------------------------------------------------------------ request streams
    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise FrameError("HEADERS on stream 0")
        start, stop = 0, len(payload)
        depends_on_itself = False
        if flags & (PADDED | PRIORITY_FLAG):
            if flags & PADDED:
                if not stop:
                    raise FrameError("HEADERS too short for its padding")
                start, stop = 1, stop - payload[0]
            if flags & PRIORITY_FLAG:
                dependency = int.from_bytes(payload[start:start + 4], "big") & 0x7FFFFFFF
                depends_on_itself = dependency == stream_id
                start += 5
            if stop < start:
                raise FrameError("HEADERS padding longer than the frame")
            payload = payload[start:stop]
        if len(payload) > self.block_limit:
            raise Flood("header block larger than the header list size limit")
        if flags & END_HEADERS:
            self._header_block(stream_id, payload, flags & END_STREAM, depends_on_itself)
        else:
            self.block = HeaderBlock(stream_id, flags & END_STREAM, payload, depends_on_itself)

    def _continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        block = self.block
        if block is None or block.stream_id != stream_id:
            raise FrameError("CONTINUATION not continuing this stream's header block (6.10)")
        block.size += len(payload)
        if block.size > self.block_limit:
            raise Flood("header block larger than the header list size limit")
        if not payload and not flags & END_HEADERS:
            self.budget.idle()
        block.parts.append(payload)
        if flags & END_HEADERS:
            self.block = None
            self._header_block(stream_id, b"".join(block.parts), block.end_stream,
                               block.self_dependent)

    def _header_block(self, stream_id: int, block: bytes, end: int, self_dependent: bool) -> None:
        """A whole header block: a request, trailers, or a frame on a stream not open."""
        if not stream_id & 1:
            raise FrameError("HEADERS on a stream id a client may not open (5.1.1)")
        try:
            fields = self.decoder.decode(block)  # (first: the table must follow every block)
        except HPACKError as exc:
            raise FrameError(str(exc), _E.COMPRESSION_ERROR) from None
        except HeaderListTooLarge as exc:
            raise Flood(str(exc)) from None
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._trailers(stream_id, stream, fields, end)
            return
        if stream_id <= self.last_stream:
            if self.closed_streams.get(stream_id) is None:
                raise FrameError("HEADERS on a stream id lower than one already opened (5.1.1)")
            self._not_open(stream_id, None, "HEADERS")
            return
        self.last_stream = stream_id
        if self_dependent:
            raise StreamError("a stream depends on itself (5.3.1)", _E.PROTOCOL_ERROR)
        self.streams[stream_id] = Stream(self.peer.initial_window, self._receive_window_now(),
                                         HALF_CLOSED_REMOTE if end else OPEN)
        self.handler.request(stream_id, fields, bool(end))

    def _trailers(self, stream_id: int, stream: Stream, fields: list, end: int) -> None:
        if stream.state is HALF_CLOSED_REMOTE:
            raise StreamError("HEADERS on a half-closed stream", _E.STREAM_CLOSED)
        if not end:
            raise StreamError("trailers without END_STREAM (8.1)", _E.PROTOCOL_ERROR)
        try:
            check_trailers(fields)
        except Malformed as exc:
            self.handler.malformed(stream_id, str(exc))
            self.reset(stream_id, _E.PROTOCOL_ERROR)  # (if the handler has not)
            return
        self._remote_end(stream_id, stream)

    def _data(self, flags: int, stream_id: int, payload: bytes, length: int) -> None:
        if not stream_id:
            raise FrameError("DATA on stream 0")
        self.recv_window -= length
        if self.recv_window < 0:
            raise FrameError("DATA past the connection's window", _E.FLOW_CONTROL_ERROR)
        self.conn_unacked += length
        if flags & PADDED:
            if not length or payload[0] >= length:
                raise FrameError("DATA padding longer than the frame")
            payload = payload[1:length - payload[0]]
        elif not length and not flags & END_STREAM:
            self.budget.idle()
        stream = self.streams.get(stream_id)
        if stream is None or stream.state is HALF_CLOSED_REMOTE:
            self._not_open(stream_id, stream, "DATA")
            return
        stream.recv_window -= length
        if stream.recv_window < 0:
            raise StreamError("DATA past the stream's window", _E.FLOW_CONTROL_ERROR)
        if length:
            self.handler.data(stream_id, payload, length)
        if flags & END_STREAM and self.streams.get(stream_id) is stream:
            self._remote_end(stream_id, stream)

    def _remote_end(self, stream_id: int, stream: Stream) -> None:
        """The client's END_STREAM: half-closed (remote), or closed once the handler has heard
        (it may still reset the stream: a body shorter than its content-length)."""
        if stream.state is OPEN:
            stream.state = HALF_CLOSED_REMOTE
            self.handler.end(stream_id)
            return
        self.handler.end(stream_id)
        if self.streams.get(stream_id) is stream:
            stream.state = CLOSED
            del self.streams[stream_id]
            self.closed_streams.add(stream_id, CLOSED_BY_END)

    def _not_open(self, stream_id: int, stream: Stream | None, what: str) -> None:
        """DATA or HEADERS on a stream the client may not send it on (RFC 9113 5.1)."""
        if stream is not None:
            raise StreamError(f"{what} on a half-closed stream", _E.STREAM_CLOSED)
        if stream_id > self.last_stream:
            raise FrameError(f"{what} on an idle stream")
        if self.closed_streams.get(stream_id) != RESET_BY_US:
            raise StreamError(f"{what} on a closed stream", _E.STREAM_CLOSED)

    def _rst_stream(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise FrameError("RST_STREAM payload not 4 bytes", _E.FRAME_SIZE_ERROR)
        if not stream_id or stream_id > self.last_stream:
            raise FrameError("RST_STREAM on stream 0 or an idle stream")
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.state = CLOSED
            self.closed_streams.add(stream_id, CLOSED_BY_END)
            self.handler.reset(stream_id, int.from_bytes(payload, "big"))

    def _stream_error(self, stream_id: int, exc: StreamError) -> None:
        """RST_STREAM with the error's code; the handler hears of a stream that was open."""
        self.budget.idle()  # (raises Flood: handled by ``receive``)
        self.out.append(rst_stream(stream_id, exc.code))
        self.closed_streams.add(stream_id, RESET_BY_US)
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.state = CLOSED
            self.handler.reset(stream_id, exc.code)

    def _receive_window_now(self) -> int:
        """A new stream's receive window: until our SETTINGS are acknowledged the client may
        assume the default."""
        window = self.local.initial_window
        return window if self.acked or window >= 65535 else 65535

    # ------------------------------------------------------------------ connection frames
    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise FrameError("SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise FrameError("SETTINGS acknowledgement with a payload", _E.FRAME_SIZE_ERROR)
            self.acked = True
            return
        delta = self.peer.apply(payload, self.encoder)
        if delta:
            shift_windows(self.streams.values(), delta)
        self.out.append(frame(SETTINGS, ACK, 0))
        if delta is not None:
            self.handler.window(0)

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise FrameError("WINDOW_UPDATE payload not 4 bytes", _E.FRAME_SIZE_ERROR)
        self.budget.window_update()
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                raise FrameError("WINDOW_UPDATE of 0 on the connection")
            self.send_window += increment
            if self.send_window > 2**31 - 1:
                raise FrameError("the connection's window past 2^31-1", _E.FLOW_CONTROL_ERROR)
            self.handler.window(0)
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream:
                raise FrameError("WINDOW_UPDATE on an idle stream")
            return  # a closed stream: ignored
        if not increment:
            raise StreamError("WINDOW_UPDATE of 0", _E.PROTOCOL_ERROR)
        stream.send_window += increment
        if stream.send_window > 2**31 - 1:
            raise StreamError("a stream's window past 2^31-1", _E.FLOW_CONTROL_ERROR)
        self.handler.window(stream_id)

    def new_budget_window(self) -> None:
        self.budget.new_window()
