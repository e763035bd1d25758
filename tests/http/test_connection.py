"""The shared connection (gworkers/http/h1/connection.py): keep-alive, pipelining, flow control on
pipelined requests, half-closed peers. Real Gunicorn, both workers, raw sockets."""

from __future__ import annotations

import json
import socket
import threading

from tests.conftest import ResponseReader, proc_status, wait_until, write_worker_module

GET = b"GET %b HTTP/1.1\r\nHost: t\r\n\r\n"


def test_keep_alive_many_requests_one_connection(start_server, worker, tls_mode):
    server = start_server(worker=worker, tls=tls_mode)
    with server.connect() as sock:
        reader = ResponseReader(sock)
        port = sock.getsockname()[1]
        for i in range(5):
            sock.sendall(GET % b"/?n=%d" % i)
            response = reader.read()
            assert response.header(b"connection") is None
            scope = json.loads(response.body)
            assert scope["query_string"] == f"n={i}"
            assert scope["client"][1] == port  # the same connection every time


def test_client_connection_close(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.header(b"connection") == b"close"
        assert reader.closed()


def test_pipelined_responses_in_order(start_server, worker, tls_mode):
    """Ten requests in one write, the first one slow: the answers come back in request order."""
    server = start_server(worker=worker, tls=tls_mode)
    requests = [
        GET % b"/sleep?0.3",
        GET % b"/?n=1",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        GET % b"/chunked",
        b"HEAD /?n=4 HTTP/1.1\r\nHost: t\r\n\r\n",
        GET % b"/status/204",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        GET % b"/?n=7",
        GET % b"/status/404",
        GET % b"/?n=9",
    ]
    with server.connect() as sock:
        sock.sendall(b"".join(requests))
        reader = ResponseReader(sock)
        assert reader.read().body == b"slept"
        assert json.loads(reader.read().body)["query_string"] == "n=1"
        assert reader.read().body == b"hello"
        assert reader.read().body == b"one,two,three"
        head = reader.read(method=b"HEAD")
        assert head.status == 200 and head.body == b""
        assert reader.read().status == 204
        assert reader.read().body == b"abc"
        assert json.loads(reader.read().body)["query_string"] == "n=7"
        assert reader.read().status == 404
        assert json.loads(reader.read().body)["query_string"] == "n=9"
        # nothing extra was sent
        sock.sendall(GET % b"/pid")
        assert reader.read().body.isdigit()


def test_pipelined_upload_behind_busy_request_is_not_buffered(start_server, worker, tmp_path):
    """While a request is in flight, a pipelined upload is read only up to a high-water mark:
    the client's send stalls and the worker's memory does not grow with the body."""
    gate = tmp_path / "gate"
    server = start_server(worker=worker, env={"GW_TEST_GATE": str(gate)})
    with server.client() as client:
        pid = int(client.get("/pid").text)
    base = proc_status(pid, "VmHWM")
    size = 48 * 1024 * 1024
    sock = server.connect(timeout=60)
    reader = ResponseReader(sock)
    sent = [0]

    def upload():
        sock.sendall(GET % b"/gate"
                     + b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        piece = b"p" * (1024 * 1024)
        for _ in range(size // len(piece)):
            sock.sendall(piece)
            sent[0] += len(piece)

    thread = threading.Thread(target=upload, daemon=True)
    with sock:
        thread.start()
        thread.join(2.0)
        # the worker stopped reading: the upload cannot finish while /gate is in flight
        assert thread.is_alive(), "the whole body was read while the first request was in flight"
        assert sent[0] < size
        assert (proc_status(pid, "VmRSS") - base) / 1024 < 24
        gate.touch()
        assert reader.read().body == b"gate open"
        assert reader.read().body == str(size).encode()
        thread.join(30)
        assert not thread.is_alive()
    assert (proc_status(pid, "VmHWM") - base) / 1024 < 24


def test_pipelined_requests_behind_busy_request_pause_reading(start_server, worker, tmp_path):
    """Many small pipelined requests behind one in flight: the worker parses a bounded number
    ahead, then stops reading until the busy request is answered; then answers in order."""
    gate = tmp_path / "gate"
    server = start_server(worker=worker, env={"GW_TEST_GATE": str(gate)})
    with server.client() as client:
        pid = int(client.get("/pid").text)
    base = proc_status(pid, "VmHWM")
    request = GET % b"/?n=%08d"
    batch = 1024
    batches = 16 * 1024 * 1024 // (len(request) + 6) // batch
    sock = server.connect(timeout=60)

    def pipeline():
        try:
            sock.sendall(GET % b"/gate")
            for i in range(batches):
                sock.sendall(b"".join(request % (i * batch + j) for j in range(batch)))
        except OSError:
            pass  # the test closes the socket once it has seen enough

    thread = threading.Thread(target=pipeline, daemon=True)
    with sock:
        thread.start()
        thread.join(2.0)
        assert thread.is_alive(), "16 MiB of requests were read while the first was in flight"
        assert (proc_status(pid, "VmRSS") - base) / 1024 < 16
        gate.touch()
        reader = ResponseReader(sock)
        assert reader.read().body == b"gate open"
        for n in range(2000):
            assert json.loads(reader.read().body)["query_string"] == f"n={n:08d}"
    thread.join(30)


def test_broken_body_of_pipelined_request(start_server, worker):
    """The requests before a broken one are answered, then its error, then the close; the app
    is never called for the broken one."""
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/sleep?0.2" + GET % b"/?n=1"
                     + b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\nzz\r\n")
        reader = ResponseReader(sock)
        assert reader.read().body == b"slept"
        assert json.loads(reader.read().body)["query_string"] == "n=1"
        error = reader.read()
        assert error.status == 400
        assert error.header(b"connection") == b"close"
        assert reader.closed()


def test_half_closed_client_still_answered(start_server, worker):
    """A client that shuts down its sending side gets the answers to what it sent, then EOF."""
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/sleep?0.2" + GET % b"/?n=2")
        sock.shutdown(socket.SHUT_WR)
        reader = ResponseReader(sock)
        assert reader.read().body == b"slept"
        assert json.loads(reader.read().body)["query_string"] == "n=2"
        assert reader.closed()


def test_half_closed_mid_body_is_disconnect(start_server, worker, tmp_path):
    """EOF in the middle of a request body: the app sees http.disconnect, nothing is answered."""
    marker = tmp_path / "disconnect.txt"
    server = start_server(worker=worker, env={"GW_TEST_DISCONNECT_MARKER": str(marker)})
    with server.connect() as sock:
        sock.sendall(b"POST /wait-disconnect HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
                     b"only part")
        sock.shutdown(socket.SHUT_WR)
        reader = ResponseReader(sock)
        wait_until(lambda: marker.exists() and marker.read_text(), message="disconnect marker")
        assert marker.read_text() == "http.disconnect\n"
        assert reader.closed()
        assert reader.buf == b""


def test_idle_connection_closed_on_eof(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/pid")
        reader = ResponseReader(sock)
        assert reader.read().status == 200
        sock.shutdown(socket.SHUT_WR)
        assert reader.closed()


SHORT_BODY_TIMEOUT = """
from gworkers import Worker, H11Worker

class Custom(Worker):
    CONFIG_KWARGS = {"timeout_request_body": 1}

class CustomH11(H11Worker):
    CONFIG_KWARGS = {"timeout_request_body": 1}
"""


def test_body_timeout_not_counted_while_we_pause_reading(start_server, worker, tmp_path):
    """A body we stopped reading (a request in flight before it) is our wait, not the client's
    silence: no 408 however long the first request takes."""
    gate = tmp_path / "gate"
    env = write_worker_module(tmp_path, "custom", SHORT_BODY_TIMEOUT)
    cls = "custom.Custom" if worker == "gworkers.Worker" else "custom.CustomH11"
    server = start_server(worker=cls, env=dict(env, GW_TEST_GATE=str(gate)))
    size = 8 * 1024 * 1024
    sock = server.connect(timeout=60)

    def upload():
        try:
            sock.sendall(GET % b"/gate" + b"POST /count HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Length: %d\r\n\r\n" % size + b"b" * size)
        except OSError:
            pass

    thread = threading.Thread(target=upload, daemon=True)
    with sock, server.client() as client:
        thread.start()
        # let the body timeout (1 s) pass several times over: three Date changes = 2+ ticks
        for _ in range(3):
            date = client.get("/pid").headers["date"]
            wait_until(lambda d=date: client.get("/pid").headers["date"] != d, message="a tick")
        gate.touch()
        reader = ResponseReader(sock)
        assert reader.read().body == b"gate open"
        response = reader.read()
        assert response.status == 200 and response.body == str(size).encode()
        thread.join(30)
        # and no late 408 for it: the connection goes on
        sock.sendall(GET % b"/pid")
        assert reader.read().status == 200
