"""Hand-built WebSocket frames over a raw socket, for input client libraries refuse to send."""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import struct

from tests.conftest import read_until_close

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def handshake_bytes(path: str = "/", extra: str = "", key: str | None = None,
                    version: str | None = "13") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Upgrade: websocket",
             "Connection: Upgrade"]
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    head = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return head.encode()


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read an HTTP response head: ``(status, headers, bytes after the head)``."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the response head: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def read_all(sock: socket.socket) -> bytes:
    return read_until_close(sock)


def dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, body = out + body[:size], body[size + 2:]


def open_ws(server, path: str = "/", extra: str = "") -> tuple[socket.socket, bytes]:
    """A raw socket past a successful handshake, and the bytes already read after the 101."""
    sock = server.connect()
    sock.sendall(handshake_bytes(path, extra))
    status, headers, rest = read_head(sock)
    if status != 101:
        raise AssertionError(f"handshake answered {status}")
    return sock, rest


def frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True,
          rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_payload(payload, key)


def mask_payload(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(CLOSE, struct.pack("!H", code) + reason)


class FrameReader:
    """Reads server frames (unmasked) from a socket; ``None`` at EOF."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self.buf = buffered
        self.eof = False

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def next(self) -> tuple[int, bool, int, bytes] | None:
        """``(opcode, fin, rsv bits, payload)``."""
        if not self._need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if not self._need(4):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            if not self._need(10):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        if not self._need(pos + n):
            return None
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return b0 & 0x0F, bool(b0 & 0x80), (b0 >> 4) & 0x7, payload

    def next_skipping_pings(self) -> tuple[int, bool, int, bytes] | None:
        while True:
            got = self.next()
            if got is None or got[0] not in (PING, PONG):
                return got

    def until_close(self, reply: bool = True) -> tuple[int | None, bytes, bool]:
        """Read to the close frame: ``(code, reason, then EOF)``; code None if none came.

        ``reply``: answer with a close frame, as a client must, so the server closes the TCP
        connection at once instead of after its close timeout.
        """
        while True:
            got = self.next()
            if got is None:
                return None, b"", True
            if got[0] == CLOSE:
                payload = got[3]
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if reply:
                    try:
                        self.sock.sendall(frame(CLOSE, payload[:2]))
                    except OSError:
                        pass  # the server had already closed: fine after a protocol error
                eof = self.next() is None
                return code, payload[2:], eof


def status_of(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3})", response)
    return int(match.group(1)) if match else 0
