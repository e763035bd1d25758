"""A client that leaves is not an application error (issue 14 item 5).

When the connection is already gone, whatever the app raises out of it (Starlette's
ClientDisconnect, our ClientDisconnected, a reset from sendfile) is one debug line; an app that
fails on a live connection is still an ERROR with its traceback, and a 500 when nothing was
sent. Real Gunicorn, a real Starlette app, both workers, raw sockets that really leave.
"""

from __future__ import annotations

import socket
import struct

import pytest

from tests.conftest import ResponseReader

APP = "tests.starlette_apps:app"
# what the worker logs when the app stops because its client left, or fails on a live connection
GONE = r"client disconnected|Exception in ASGI application"


def abort(sock: socket.socket) -> None:
    """Leave the way a browser tab that is closed does: a reset, with unread data."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_at_least(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}: {data[:200]!r}"
        data += chunk
    return data


def assert_quiet(log: str) -> None:
    assert "[ERROR]" not in log, log
    assert "Traceback" not in log, log
    assert "ConnectionResetError" not in log and "BrokenPipeError" not in log, log
    # an app sending without awaiting anything is stopped at once, not left writing into a
    # transport that is gone (asyncio warns for each such write)
    assert "socket.send() raised exception" not in log, log


@pytest.mark.parametrize("path, marker", [("/stream", b"xxxx"), ("/events", b"data: 1\n\n")])
def test_streaming_client_leaves(start_server, worker, path, marker):
    server = start_server(app=APP, worker=worker)
    sock = server.connect()
    sock.sendall(b"GET %b HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    read_at_least(sock, marker)
    abort(sock)
    server.wait_for_log(GONE)
    assert_quiet(server.log())
    # the worker goes on serving
    with server.client() as client:
        assert client.get("/boom").status_code == 500


def test_pathsend_download_client_leaves(start_server, worker, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 * 1024 * 1024)  # sparse: large, and nothing to write
    server = start_server(app=APP, worker=worker, env={"GW_BIG_FILE": str(big)})
    sock = server.connect()
    sock.sendall(b"GET /download HTTP/1.1\r\nHost: t\r\n\r\n")
    head = read_at_least(sock, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    read_at_least(sock, b"\0" * 1024)
    abort(sock)
    server.wait_for_log(GONE)
    assert_quiet(server.log())


def test_app_error_on_live_connection_is_still_an_error(start_server, worker):
    server = start_server(app=APP, worker=worker)
    with server.client() as client:
        response = client.get("/boom")
    assert response.status_code == 500
    server.wait_for_log(r"\[ERROR\] Exception in ASGI application")
    log = server.log()
    assert "Traceback" in log and "RuntimeError: starlette boom" in log
    assert "client disconnected" not in log
    # an error after the response started: ERROR and traceback, the connection is closed
    with server.connect() as sock:
        sock.sendall(b"GET /boom-midway HTTP/1.1\r\nHost: t\r\n\r\n")
        reader = ResponseReader(sock)
        with pytest.raises(AssertionError, match="closed"):
            reader.read()  # the chunked body never ends properly
    server.wait_for_log(r"RuntimeError: starlette boom midway")
    assert server.log().count("[ERROR] Exception in ASGI application") == 2
