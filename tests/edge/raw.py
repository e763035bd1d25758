"""Raw-socket helpers for the edge tests: read one HTTP/1.1 response, or everything until close."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import read_until_close  # noqa: F401 - the edge tests import it from here


def read_response(sock: socket.socket, buf: bytearray | None = None) -> tuple[int, dict, bytes]:
    """Read one response framed by Content-Length; ``buf`` carries bytes read past it."""
    buf = buf if buf is not None else bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {bytes(buf)!r}")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[: end + 4]
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a response body")
        buf += chunk
    body = bytes(buf[:length])
    del buf[:length]
    return status, headers, body




def is_open(sock: socket.socket) -> bool:
    """True while the server has neither closed nor written to this idle socket."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
    return False


def marker_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
