"""HTTP/1.1 response bytes: status lines, chunk framing, 1xx answers, and the server's own error
replies (built here and nowhere else: the connection's 400/408/413/431/500/503 and the WebSocket
handshake's refusals).
"""

from __future__ import annotations

from http import HTTPStatus

from ..fields import check_status

STATUS_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("latin-1")) for s in HTTPStatus
}
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        check_status(status)
        line = STATUS_LINES[status] = b"HTTP/1.1 %d \r\n" % status
    return line


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body, framed in a single bytes object."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def field_lines(headers: object) -> bytes:
    """``name: value`` lines of already validated fields."""
    return b"".join([b"%b: %b\r\n" % (name, value) for name, value in headers])  # type: ignore[attr-defined]


def informational(status: int, headers: object) -> bytes:
    """A 1xx answer (100 Continue, 103 Early Hints)."""
    if status == 100 and not headers:
        return CONTINUE
    return status_line(status) + field_lines(headers) + b"\r\n"


def error_reply(status: int, message: str = "", block: bytes = b"", extra: bytes = b"",
                keep_alive: bool = False) -> bytes:
    """A small plain-text reply the server writes itself (400, 408, 413, 431, 500, 503, ...).

    ``block``: the default header lines (server, date); ``extra``: more header lines (a
    WebSocket refusal's ``sec-websocket-version``). The body is ``message``, or the status's
    reason phrase.
    """
    body = message.encode("utf-8", "replace") if message else (
        HTTPStatus(status).phrase.encode() if status in STATUS_LINES else b"")
    return b"%b%b%bcontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n%b\r\n%b" % (
        status_line(status), block, extra, len(body),
        b"" if keep_alive else b"connection: close\r\n", body)
