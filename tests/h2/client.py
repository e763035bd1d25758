"""A small blocking HTTP/2 client over a raw socket, built on h2 (client side) and hyperframe,
for what httpx cannot show or do: trailers, 1xx, resets, flow-control windows left closed, and
hand-made frames for the protocol-error and flood tests."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    PingAckReceived,
    PingReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame

from tests.conftest import connect_raw


@dataclass
class Response:
    headers: list = field(default_factory=list)
    informational: list = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    trailers: list = field(default_factory=list)
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers).get(name)


def open_socket(server, alpn: str = "h2", timeout: float = 10.0) -> socket.socket:
    """A raw socket offering h2 by ALPN when the server speaks TLS."""
    return connect_raw(server, timeout, alpn)


OPEN: list[H2Client] = []  # closed after each test (conftest)


class H2Client:
    """``auto_ack=False`` leaves every receive window as the server filled it (a slow reader)."""

    def __init__(self, server, auto_ack: bool = True, preface: bool = True,
                 settings: dict | None = None, raw_after_goaway: bool = False,
                 proxy_header: bytes = b"") -> None:
        self.sock = open_socket(server)
        if proxy_header:  # a PROXY protocol header, as a proxy sends it before any HTTP
            self.sock.sendall(proxy_header)
        OPEN.append(self)
        self.authority = b"localhost"
        self.auto_ack = auto_ack
        self.conn = H2Connection(H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False))
        self.responses: dict[int, Response] = {}
        self.goaway: ConnectionTerminated | None = None
        self.goaways: list = []  # every GOAWAY, in order (a drain, then a quick exit)
        self.pings: list[bytes] = []  # PINGs the server sent
        self.ping_acks: list[bytes] = []  # answers to ours
        self.closed = False
        self.received = 0
        # h2 as a client refuses every frame after a GOAWAY, even the streams the server still
        # finishes (a graceful drain): read those frames ourselves
        self.raw_after_goaway = raw_after_goaway
        self.raw = bytearray()
        if preface:
            if settings:
                self.conn.local_settings.update(settings)
            self.conn.initiate_connection()
            self.flush()

    def upgrade(self, path: str) -> bytes:
        """``GET path`` on HTTP/1.1 asking ``Upgrade: h2c`` (RFC 7540 3.2; build with
        ``preface=False``). Returns the server's HTTP/1.1 answer head; after a 101 this client
        speaks HTTP/2 and the request's answer is stream 1."""
        settings = self.conn.initiate_upgrade_connection()
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                          b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                          b"HTTP2-Settings: " + settings + b"\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 101 "):
            self.responses[1] = Response()
            self.flush()  # our preface
            for event in self.conn.receive_data(rest):
                self._handle(event)
        return head

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", headers: list | None = None,
                body: bytes | None = None, end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"https" if False else b"http"),
                  (b":authority", self.authority), (b":path", path.encode()), *(headers or [])]
        self.conn.send_headers(sid, fields, end_stream=end and body is None)
        self.responses[sid] = Response()
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """Send what the windows allow (the tests keep bodies within them)."""
        size = self.conn.max_outbound_frame_size
        for i in range(0, len(body), size):
            last = i + size >= len(body)
            self.conn.send_data(sid, body[i:i + size], end_stream=end and last)
        if not body and end:
            self.conn.end_stream(sid)
        self.flush()

    def reset(self, sid: int, code: int = 8) -> None:
        self.conn.reset_stream(sid, code)
        self.flush()

    def pump(self, timeout: float = 5.0) -> bool:
        """Read once (up to ``timeout``) and handle what came; False when the peer closed."""
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.received += len(data)
        if self.raw_after_goaway:
            self._read_frames(data)
            return True
        for event in self.conn.receive_data(data):
            self._handle(event)
        try:
            self.flush()
        except OSError:
            pass  # the server closed its side: what it sent is still to be read
        return True

    def _read_frames(self, data: bytes) -> None:
        """Frames parsed by hand (hyperframe, and h2's HPACK decoder for header blocks)."""
        self.raw += data
        while len(self.raw) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.raw[:9]))
            if len(self.raw) < 9 + length:
                return
            frame.parse_body(memoryview(self.raw[9:9 + length]))
            del self.raw[:9 + length]
            response = self.responses.get(frame.stream_id)
            if isinstance(frame, GoAwayFrame):
                self.goaway = ConnectionTerminated()
                self.goaway.error_code = frame.error_code
                self.goaway.last_stream_id = frame.last_stream_id
                self.goaways.append(self.goaway)
            elif isinstance(frame, HeadersFrame) and response is not None:
                headers = self.conn.decoder.decode(frame.data, raw=True)
                if response.headers:
                    response.trailers = headers
                else:
                    response.headers = headers
            elif isinstance(frame, DataFrame) and response is not None:
                response.data += frame.data
            elif isinstance(frame, RstStreamFrame) and response is not None:
                response.reset = frame.error_code
            if response is not None and "END_STREAM" in frame.flags:
                response.ended = True

    def _handle(self, event) -> None:
        sid = getattr(event, "stream_id", None)
        response = self.responses.get(sid) if sid else None
        if isinstance(event, ResponseReceived):
            response.headers = event.headers
        elif isinstance(event, InformationalResponseReceived):
            response.informational.append(event.headers)
        elif isinstance(event, DataReceived):
            response.data += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
        elif isinstance(event, TrailersReceived):
            response.trailers = event.headers
        elif isinstance(event, StreamEnded):
            response.ended = True
        elif isinstance(event, StreamReset):
            if response is not None:
                response.reset = event.error_code
        elif isinstance(event, ConnectionTerminated):
            self.goaway = event
            self.goaways.append(event)
        elif isinstance(event, PingReceived):
            self.pings.append(event.ping_data)
        elif isinstance(event, PingAckReceived):
            self.ping_acks.append(event.ping_data)

    def until(self, predicate, timeout: float = 20.0, message: str = "condition"):
        end = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {message}")
            if not self.pump(min(1.0, max(end - time.monotonic(), 0.01))):
                result = predicate()
                if result:
                    return result
                raise AssertionError(f"connection closed while waiting for {message}")

    def final_goaway(self, timeout: float = 20.0) -> ConnectionTerminated:
        """The GOAWAY naming the last stream taken: a drain sends one naming the largest
        stream id first (RFC 9113 6.8), unless nothing was open."""
        return self.until(lambda: next((g for g in self.goaways
                                        if g.last_stream_id != 2**31 - 1), None),
                          timeout, "the final GOAWAY")

    def response(self, sid: int, timeout: float = 20.0) -> Response:
        response = self.responses[sid]
        self.until(lambda: response.ended or response.reset is not None, timeout,
                   f"stream {sid}")
        return response

    def wait_closed(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while self.pump(min(1.0, max(end - time.monotonic(), 0.01))):
            if time.monotonic() > end:
                raise AssertionError("the server did not close the connection")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
