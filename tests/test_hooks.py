"""Gunicorn's server hooks with the objects Gunicorn documents: pre_request and post_request per
request, post_worker_init and worker_exit per worker; errors in Gunicorn's error log."""

from __future__ import annotations

import json
import signal

from tests.conftest import wait_until
from tests.contract_apps import read_events, write_hooks

REQUEST_HOOKS = '''
def pre_request(worker, req):
    _w("pre " + json.dumps({
        "method": req.method, "path": req.path, "query": req.query, "uri": req.uri,
        "fragment": req.fragment, "version": list(req.version), "headers": req.headers,
        "scheme": req.scheme, "pid": worker.pid, "same": worker.pid == os.getpid(),
    }))

def post_request(worker, req, environ, resp):
    _w("post " + json.dumps({
        "path": req.path, "status": resp.status, "status_code": resp.status_code,
        "headers": resp.headers, "sent": resp.sent, "method": environ["REQUEST_METHOD"],
        "path_info": environ["PATH_INFO"], "query_string": environ["QUERY_STRING"],
        "raw_uri": environ["RAW_URI"], "remote_addr": environ["REMOTE_ADDR"],
        "http_x_custom": environ.get("HTTP_X_CUSTOM"),
    }))
'''


def hooks_server(tmp_path, start_server, worker, extra=""):
    events = tmp_path / "events.txt"
    conf = write_hooks(tmp_path, events, extra)
    server = start_server(app="tests.contract_apps:app", worker=worker,
                          args=["-w", "1", "-c", str(conf)], env={"GW_TEST_EVENTS": str(events)})
    return server, events


def test_pre_and_post_request_see_gunicorns_objects(tmp_path, start_server, worker):
    server, events = hooks_server(tmp_path, start_server, worker, REQUEST_HOOKS)
    sock = server.connect()
    sock.sendall(b"GET /mark?a%20b=1 HTTP/1.1\r\nHost: example\r\nX-Custom: v1\r\n"
                 b"Connection: close\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    body = answer.partition(b"\r\n\r\n")[2].decode()
    pid = int(body)
    lines = wait_until(lambda: (lines := read_events(events)) and
                       any(line.startswith("post ") for line in lines) and lines,
                       message="post_request")
    # one call each, around the app
    kinds = [line.split(" ", 1)[0] for line in lines if not line.startswith("post_worker_init")]
    assert kinds == ["pre", "started", "post"]
    pre = json.loads(next(line for line in lines if line.startswith("pre "))[4:])
    assert pre == {
        "method": "GET", "path": "/mark", "query": "a%20b=1", "uri": "/mark?a%20b=1",
        "fragment": "", "version": [1, 1],
        "headers": [["HOST", "example"], ["X-CUSTOM", "v1"], ["CONNECTION", "close"]],
        "scheme": "http", "pid": pid, "same": True,
    }
    post = json.loads(next(line for line in lines if line.startswith("post "))[5:])
    assert post == {
        "path": "/mark", "status": "200 OK", "status_code": 200,
        "headers": [["content-type", "text/plain"], ["content-length", str(len(body))]],
        "sent": len(body), "method": "GET", "path_info": "/mark", "query_string": "a%20b=1",
        "raw_uri": "/mark?a%20b=1", "remote_addr": "127.0.0.1", "http_x_custom": "v1",
    }


def test_failing_request_hooks_are_logged_not_fatal(tmp_path, start_server, worker):
    extra = '''
def pre_request(worker, req):
    raise RuntimeError("pre hook broke")

def post_request(worker, req, environ, resp):
    raise RuntimeError("post hook broke")
'''
    server, _ = hooks_server(tmp_path, start_server, worker, extra)
    with server.client() as client:
        for _ in range(2):
            assert client.get("/pid").status_code == 200
    server.wait_for_log(r"\[ERROR\] Exception in pre_request hook\n(?:.*\n)*?RuntimeError: pre hook")
    server.wait_for_log(r"\[ERROR\] Exception in post_request hook\n(?:.*\n)*?RuntimeError: post hook")


def test_post_worker_init_before_serving_and_worker_exit_after(tmp_path, start_server, worker):
    server, events = hooks_server(tmp_path, start_server, worker)
    with server.client() as client:
        pid = int(client.get("/pid").text)
    assert read_events(events) == [f"post_worker_init {pid}"]
    server.signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    assert read_events(events) == [f"post_worker_init {pid}", f"worker_exit {pid}"]
