"""A WebSocket client over HTTP/2 (RFC 8441) for the tests: the extended CONNECT and the h2
stream from ``tests.h2.client.H2Client`` (h2, client side), the WebSocket frames from wsproto's
``FrameProtocol`` (client side: masked, with permessage-deflate when the server accepts it)."""

from __future__ import annotations

from h2.settings import SettingCodes
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode

from tests.h2.client import H2Client


class H2WebSocket:
    def __init__(self, server, path: str, deflate: bool = False, version: bytes = b"13",
                 protocol: bytes = b"websocket", extra: list | None = None) -> None:
        client = self.client = H2Client(server)
        # the server's SETTINGS first: a client may send :protocol only once it is allowed
        client.until(lambda: client.conn.remote_settings.get(
            SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1, message="ENABLE_CONNECT_PROTOCOL")
        self.deflate = PerMessageDeflate() if deflate else None
        fields = [(b":method", b"CONNECT"), (b":protocol", protocol), (b":scheme", b"http"),
                  (b":path", path.encode()), (b":authority", b"localhost")]
        if version:
            fields.append((b"sec-websocket-version", version))
        if self.deflate is not None:
            fields.append((b"sec-websocket-extensions",
                           b"permessage-deflate; " + self.deflate.offer().encode()))
        fields += extra or []
        self.sid = sid = client.conn.get_next_available_stream_id()
        client.conn.send_headers(sid, fields)
        from tests.h2.client import Response

        self.response = client.responses[sid] = Response()
        client.flush()
        self.frames: FrameProtocol | None = None
        self.read = 0  # bytes of response.data already given to the frame parser
        self.parts: list = []
        self.queue: list = []

    def handshake(self) -> int:
        """The response status; on 200 the frame protocol is ready."""
        response = self.response
        self.client.until(lambda: response.headers or response.reset is not None,
                          message="the CONNECT response")
        status = response.status
        if status == 200:
            extensions = []
            accepted = response.header(b"sec-websocket-extensions")
            if self.deflate is not None and accepted is not None:
                self.deflate.finalize(accepted.decode())
                extensions.append(self.deflate)
            self.frames = FrameProtocol(client=True, extensions=extensions)
        return status

    # ------------------------------------------------------------------ sending
    def send_raw(self, data: bytes, end: bool = False) -> None:
        """Within the flow-control windows, reading while they are closed."""
        conn = self.client.conn
        while data:
            window = min(conn.local_flow_control_window(self.sid), conn.max_outbound_frame_size)
            if window <= 0:
                self.client.pump(1.0)
                continue
            conn.send_data(self.sid, data[:window])
            data = data[window:]
            self.client.flush()
        if end:
            conn.end_stream(self.sid)
            self.client.flush()

    def send(self, payload: str | bytes) -> None:
        self.send_raw(self.frames.send_data(payload, fin=True))

    def ping(self, payload: bytes) -> None:
        self.send_raw(self.frames.ping(payload))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.send_raw(self.frames.close(code, reason))

    # ------------------------------------------------------------------ receiving
    def _parse(self) -> None:
        data = self.response.data
        if len(data) > self.read:
            self.frames.receive_bytes(bytes(data[self.read:]))
            self.read = len(data)
        for frame in self.frames.received_frames():
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                self.parts.append((frame.opcode, frame.payload))
                if frame.message_finished:
                    opcode = self.parts[0][0]
                    payloads = [p for _, p in self.parts]
                    self.parts = []
                    joined = "".join(payloads) if opcode is Opcode.TEXT else b"".join(payloads)
                    self.queue.append((opcode, joined))
            else:
                self.queue.append((frame.opcode, frame.payload))

    def next_frame(self, timeout: float = 20.0):
        """The next whole message or control frame, ``(opcode, payload)``; None if the stream
        ended or was reset first."""
        response = self.response

        def ready():
            self._parse()
            return self.queue or response.reset is not None or response.ended

        self.client.until(ready, timeout, "a WebSocket frame")
        return self.queue.pop(0) if self.queue else None

    def ended(self, timeout: float = 20.0) -> bool:
        """Wait for the server's END_STREAM (its side closed) or a reset."""
        response = self.response
        self.client.until(lambda: response.ended or response.reset is not None, timeout,
                          "the end of the stream")
        return response.ended
