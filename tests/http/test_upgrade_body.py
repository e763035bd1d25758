"""A request asking for an upgrade nobody takes is served as plain HTTP/1.1, body included.

llhttp reads any request with ``Upgrade`` + ``Connection: upgrade`` as bodiless and stops at the
end of its head; the httptools adapter must then read the body by the head's own framing
(Content-Length or chunked), as the h11 adapter does, before the connection closes (RFC 9110
7.8: what follows may be in the other protocol, so no further request is read).
"""

from __future__ import annotations

import pytest

from tests.conftest import raw_request, read_until_close

HEAD = (b"POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: %b\r\nConnection: Upgrade\r\n%b\r\n")
BODIES = {
    "content-length": (b"Content-Length: 11\r\n", b"hello world"),
    "chunked": (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n1; ext = 1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"),
}


def answer(raw: bytes) -> tuple[int, dict, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


@pytest.fixture
def echo_server(start_server, worker):
    return start_server(worker=worker)


@pytest.mark.parametrize("token", [b"foo", b"h2c"])
@pytest.mark.parametrize("framing", sorted(BODIES))
def test_body_of_an_upgrade_not_taken_reaches_the_app(echo_server, token, framing):
    field, body = BODIES[framing]
    raw = raw_request(echo_server, HEAD % (token, field) + body)
    status, headers, got = answer(raw)
    assert status == 200
    assert got == b"hello world"
    assert headers["connection"] == "close"
    assert raw.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("framing", sorted(BODIES))
def test_body_after_the_head_in_later_reads(echo_server, framing):
    """The body arrives in pieces after the head: each piece goes to the app, then the
    connection closes without reading what follows as a request."""
    field, body = BODIES[framing]
    sock = echo_server.connect()
    try:
        sock.sendall(HEAD % (b"foo", field))
        for i in range(0, len(body), 4):
            sock.sendall(body[i : i + 4])
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")  # never read: after an upgrade
        raw = read_until_close(sock, stop_at_timeout=True)
    finally:
        sock.close()
    status, _, got = answer(raw)
    assert status == 200 and got == b"hello world"
    assert raw.count(b"HTTP/1.1 ") == 1
