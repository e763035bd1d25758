"""The HTTP/2 connection without I/O: h2's state machine plus our settings and limits.

``H2Core`` owns one ``h2.connection.H2Connection``. Bytes go in with ``receive``; what they
mean comes out as calls on a ``handler`` (the asyncio connection): ``request``, ``data``,
``end``, ``reset``, ``malformed``, ``window``, ``peer_goaway``, ``terminated``. What we answer
goes in through the send methods and leaves with ``data_to_send``. Nothing here touches a
socket, a loop or a task, so the protocol rules can be driven by plain calls.

Decisions made here, and why:

* Our SETTINGS go out in the preface and apply at once (h2 would otherwise wait for the ACK).
  SETTINGS_MAX_CONCURRENT_STREAMS is advertised, but h2 is told no limit: h2 answers a stream
  over the limit with a connection error (GOAWAY), RFC 9113 5.1.2 allows the stream error
  REFUSED_STREAM, which the handler gives (counting open streams, and app calls still running
  apart, so a stream the client reset early still counts until its app call returns: the
  rapid-reset defence).
* Request headers are validated by us (``request.py``), not by h2: a malformed request is a
  stream error (RFC 9113 8.1.1), h2 makes it a connection error, and one pass is cheaper.
* Inbound flow control is by hand: a stream's window opens when the app has read the bytes
  (``open_window``), so an unread upload stalls that stream only; the connection window is
  large and reopened as bytes arrive (the stream windows already bound what is buffered).
* A graceful GOAWAY (drain) is written as a frame beside h2: h2's ``close_connection`` would
  refuse every frame after it, including the rest of the streams we still answer.
* Where h2 reads RFC 9113 otherwise, ``ServerConnection`` corrects it (see its docstring): a
  client's GOAWAY, HPACK errors, and a request's content-length (counted by the connection).
"""

from __future__ import annotations

from typing import Any, Protocol

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.exceptions import StreamClosedError
from h2.settings import SettingCodes, Settings
from hpack import HPACKError
from hyperframe.frame import GoAwayFrame

from .frames import FrameError, FrameGuard
from .request import Malformed, check_trailers

# The connection-level receive window we keep open (the stream windows bound what is buffered).
CONNECTION_WINDOW = 16 * 1024 * 1024
# Frames bringing no request or body a connection may send per second (frames.py).
FLOOD_BUDGET = 1000
_NO_LIMIT = 2**31 - 1


class CompressionError(H2ProtocolError):
    """A header block that does not decode (RFC 9113 4.3: COMPRESSION_ERROR)."""

    error_code = ErrorCodes.COMPRESSION_ERROR


class ServerConnection(H2Connection):
    """h2's connection, where three of its readings of RFC 9113 are corrected:

    * A client's GOAWAY (6.8) names the last stream *we* opened; the client's own streams go
      on, and their frames with them (DATA, WINDOW_UPDATE, PING ...). h2 closes its state
      machine and drops what it had queued, so the responses still owed could not be sent
      and every later frame of the client would be a PROTOCOL_ERROR.
    * A header block that does not decode is a COMPRESSION_ERROR (4.3); h2 says
      PROTOCOL_ERROR.
    * A request whose content-length differs from its DATA is malformed (8.1.1), a stream
      error; h2 makes it a connection error. The connection counts it (connection.py), so
      h2's count is switched off for each request.

    And one of its costs is cut: on each new stream h2 counts the open streams (walking them
    all, and dropping the closed ones as it goes) to check SETTINGS_MAX_CONCURRENT_STREAMS;
    h2 is told no limit here (the handler enforces ours), so only the dropping matters, and it
    is done once the streams held have doubled: O(1) a stream instead of O(open streams), 8%
    of a request at 100 streams per connection (bench/h2hot.py --profile).
    """

    _since_prune = 0

    @property
    def open_inbound_streams(self) -> int:
        self._since_prune += 1
        if self._since_prune > len(self.streams) // 2:
            self._since_prune = 0
            return self._open_streams(0)
        return 0  # (compared with no limit: never refuses)

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list, list]:
        event = ConnectionTerminated()
        event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def _receive_headers_frame(self, frame: Any) -> tuple[list, list]:
        try:
            frames, events = super()._receive_headers_frame(frame)
        except H2ProtocolError as exc:
            # (an HPACK bomb is h2's DenialOfServiceError: ENHANCE_YOUR_CALM stays)
            if type(exc) is H2ProtocolError \
                    and isinstance(exc.__cause__, HPACKError | IndexError | TypeError):
                raise CompressionError(str(exc)) from exc.__cause__
            raise
        stream = self.streams.get(frame.stream_id)
        if stream is not None:
            stream._expected_content_length = None  # counted by the connection instead
        return frames, events


class Handler(Protocol):
    """What ``H2Core`` reports (implemented by the asyncio connection)."""

    def request(self, stream_id: int, headers: list, ended: bool) -> None: ...

    def data(self, stream_id: int, data: bytes, size: int) -> None: ...

    def end(self, stream_id: int) -> None: ...

    def malformed(self, stream_id: int, reason: str) -> None: ...

    def reset(self, stream_id: int, code: int) -> None: ...

    def window(self, stream_id: int) -> None: ...

    def peer_goaway(self, code: int) -> None: ...

    def terminated(self, code: int, reason: str) -> None: ...


class H2Core:
    """One HTTP/2 server connection's protocol state (see the module docstring)."""

    __slots__ = ("closed", "conn", "conn_unacked", "draining", "guard", "handler", "last_stream",
                 "written")

    def __init__(self, config: Any, handler: Handler) -> None:
        self.handler = handler
        conn = self.conn = ServerConnection(H2Configuration(
            client_side=False, header_encoding=None,
            validate_inbound_headers=False, normalize_inbound_headers=False,
            validate_outbound_headers=False, normalize_outbound_headers=False,
        ))
        advertised = {
            SettingCodes.MAX_CONCURRENT_STREAMS: config.http2_max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: config.http2_initial_window_size,
            SettingCodes.MAX_FRAME_SIZE: config.http2_max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: config.http2_max_header_list_size,
            # RFC 8441: WebSockets by extended CONNECT (websocket.py)
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
        }
        conn.local_settings = Settings(client=False, initial_values=advertised)
        conn.max_inbound_frame_size = config.http2_max_frame_size
        conn.decoder.max_header_list_size = config.http2_max_header_list_size
        self.guard = FrameGuard(config.http2_max_header_list_size, FLOOD_BUDGET)
        self.conn_unacked = 0
        self.draining = False
        self.closed = False
        self.last_stream = 0  # the highest stream id answered (GOAWAY's last stream id)
        self.written = b""  # frames we serialised ourselves (the drain's GOAWAY)

    # ------------------------------------------------------------------ start
    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        """Our preface (SETTINGS), then a connection window wider than the default 64 KiB.

        ``upgrade_settings``: the HTTP2-Settings of an ``Upgrade: h2c`` request, whose request
        becomes stream 1 (half closed: its body, if any, came over HTTP/1.1).
        """
        conn = self.conn
        if upgrade_settings is not None:
            conn.initiate_upgrade_connection(upgrade_settings)
        else:
            conn.initiate_connection()
        # h2 counts every stream against this; the advertised limit is enforced by the handler
        conn.local_settings = Settings(client=False, initial_values={
            **dict(conn.local_settings.items()),
            SettingCodes.MAX_CONCURRENT_STREAMS: _NO_LIMIT,
        })
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)

    # ------------------------------------------------------------------ receive
    def receive(self, data: bytes) -> None:
        """Feed bytes; the handler hears what they mean. Errors end the connection here."""
        if self.closed:
            return
        try:
            self.guard.feed(data)
            events = self.conn.receive_data(data)
        except FrameError as exc:
            self.terminate(exc.code, str(exc))
            return
        except H2ProtocolError as exc:
            # h2 has queued its GOAWAY with the error's code
            self.closed = True
            self.handler.terminated(int(getattr(exc, "error_code", 1) or 1), str(exc))
            return
        handler = self.handler
        for event in events:
            kind = type(event)
            if kind is DataReceived:
                size = event.flow_controlled_length
                self.conn_unacked += size
                handler.data(event.stream_id, event.data, size)
            elif kind is RequestReceived:
                stream_id = event.stream_id
                self.last_stream = stream_id
                handler.request(stream_id, event.headers, event.stream_ended is not None)
            elif kind is StreamEnded:
                handler.end(event.stream_id)
            elif kind is TrailersReceived:  # checked (RFC 9113 8.1), not passed on (ASGI
                try:  # has no request trailers)
                    check_trailers(event.headers)
                except Malformed as exc:
                    handler.malformed(event.stream_id, str(exc))
            elif kind is StreamReset:
                handler.reset(event.stream_id, int(event.error_code or 0))
            elif kind is WindowUpdated:
                handler.window(event.stream_id)
            elif kind is RemoteSettingsChanged:
                if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    handler.window(0)
            elif kind is ConnectionTerminated:
                handler.peer_goaway(int(event.error_code or 0))
            if self.closed:
                return
        if self.conn_unacked >= CONNECTION_WINDOW // 2:
            self.conn.increment_flow_control_window(self.conn_unacked)
            self.conn_unacked = 0

    def new_budget_window(self) -> None:
        self.guard.new_window()

    # ------------------------------------------------------------------ send
    def data_to_send(self) -> bytes:
        data = self.conn.data_to_send()
        if self.written:
            data, self.written = data + self.written, b""
        return data

    def send_headers(self, stream_id: int, headers: list, end: bool) -> bool:
        """False when the stream is already closed (the peer reset it)."""
        try:
            self.conn.send_headers(stream_id, headers, end_stream=end)
        except (StreamClosedError, H2ProtocolError):
            return False
        return True

    def send_data(self, stream_id: int, data: bytes, end: bool) -> bytes | None:
        """Send what the flow-control windows allow, in frames the peer accepts.

        Returns the bytes left over (b"" when all left; ``end`` is then on the last frame), or
        None when the stream is closed.
        """
        conn = self.conn
        frames = 0
        try:
            while True:
                window = conn.local_flow_control_window(stream_id)
                size = len(data)
                if size <= window and size <= conn.max_outbound_frame_size:
                    conn.send_data(stream_id, data, end_stream=end)
                    self.guard.data_sent(frames + 1)
                    return b""
                n = min(window, conn.max_outbound_frame_size)
                if n <= 0:
                    self.guard.data_sent(frames)
                    return data
                conn.send_data(stream_id, data[:n])
                frames += 1
                data = data[n:]
        except (StreamClosedError, H2ProtocolError):
            return None

    def window_for(self, stream_id: int) -> int:
        """Bytes the peer lets us send on this stream now (0 if closed)."""
        try:
            return min(self.conn.local_flow_control_window(stream_id),
                       self.conn.max_outbound_frame_size)
        except (StreamClosedError, H2ProtocolError, KeyError):
            return 0

    def open_window(self, stream_id: int, size: int) -> None:
        """The app read ``size`` bytes of this stream's body: the peer may send that much more."""
        try:
            self.conn.increment_flow_control_window(size, stream_id=stream_id)
        except (StreamClosedError, H2ProtocolError, KeyError):
            pass  # the stream ended meanwhile: nothing to open

    def reset(self, stream_id: int, code: int) -> None:
        try:
            self.conn.reset_stream(stream_id, error_code=code)
        except (StreamClosedError, H2ProtocolError, KeyError):
            pass  # closed already: nothing to reset

    def receive_window(self, stream_id: int) -> int:
        """Bytes the peer may still send on this stream before we open its window (0 if
        closed)."""
        try:
            return self.conn.remote_flow_control_window(stream_id)
        except (StreamClosedError, H2ProtocolError, KeyError):
            return 0

    def stream_open(self, stream_id: int) -> bool:
        """Whether h2 still holds the stream open in some direction."""
        stream = self.conn.streams.get(stream_id)
        return stream is not None and not stream.closed

    # ------------------------------------------------------------------ ending
    def drain(self) -> None:
        """GOAWAY NO_ERROR naming the last stream we will answer; streams after it are refused.

        Written beside h2 (see the module docstring) after whatever h2 has queued.
        """
        if self.draining or self.closed:
            return
        self.draining = True
        frame = GoAwayFrame(0, last_stream_id=self.conn.highest_inbound_stream_id,
                            error_code=ErrorCodes.NO_ERROR)
        self.written += frame.serialize()

    def goodbye(self) -> None:
        """The last GOAWAY of a quick exit (after the drain's, if one was sent): NO_ERROR, the
        same last stream id (it may not grow, RFC 9113 6.8); nothing is sent after it."""
        if self.closed:
            return
        self.closed = True
        frame = GoAwayFrame(0, last_stream_id=self.conn.highest_inbound_stream_id,
                            error_code=ErrorCodes.NO_ERROR)
        self.written += frame.serialize()

    def terminate(self, code: int, reason: str) -> None:
        """End the connection now: GOAWAY with ``code``; the handler closes after the flush."""
        if self.closed:
            return
        self.closed = True
        try:
            self.conn.close_connection(error_code=code,
                                       last_stream_id=self.conn.highest_inbound_stream_id)
        except H2ProtocolError:
            pass  # h2 already closed it
        self.handler.terminated(code, reason)
