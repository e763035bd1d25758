"""The raw-request corpus against both real workers, over raw sockets.

One Gunicorn per worker class serves the whole module (tests.apps:corpus_app, which records
every call in a file). A valid case must reach the app exactly as the corpus says, be answered
200, and keep or close the connection as the corpus says: the case is followed by a second
request in the same bytes, answered after a keep-alive case and never even read after one that
closes the connection. An invalid case, followed
by a valid request in the same bytes, must get exactly one answer with the expected status,
``connection: close`` and a closed connection; the app never sees a request whose head was
refused, and never a complete request whose body was.
"""

from __future__ import annotations

import json
import ssl

import pytest

from tests.conftest import WORKERS
from tests.corpus import load

CASES = load()
VALID = [c for c in CASES if c.kind == "valid"]
INVALID = [c for c in CASES if c.kind == "invalid"]
NEXT = b"GET /next HTTP/1.1\r\nHost: next.example\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module", params=WORKERS)
def corpus_server(request, start_module_server, tmp_path_factory):
    calls = tmp_path_factory.mktemp("calls") / "calls.jsonl"
    calls.touch()
    server = start_module_server(
        app="tests.apps:corpus_app", worker=request.param, env={"GW_TEST_CALLS": str(calls)}
    )
    server.calls = calls
    return server


def exchange(server, data: bytes) -> tuple[bytes, bool]:
    """Send ``data``, read until the server closes; True if it closed (not a timeout)."""
    sock = server.connect(timeout=15)
    chunks = []
    closed = False
    try:
        sock.sendall(data)
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except (ConnectionResetError, ssl.SSLError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
    finally:
        sock.close()
    return b"".join(chunks), closed


def parse_responses(data: bytes, methods: list[bytes]) -> list[tuple[int, dict, bytes]]:
    """Split what the server sent into (status, headers, body) final responses; 1xx skipped."""
    responses = []
    while data:
        end = data.index(b"\r\n\r\n")
        lines = data[:end].decode("latin-1").split("\r\n")
        data = data[end + 4 :]
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200:
            continue
        method = methods[len(responses)] if len(responses) < len(methods) else b"GET"
        length = 0 if method == b"HEAD" else int(headers.get("content-length", "0"))
        responses.append((status, headers, data[:length]))
        data = data[length:]
    return responses


def new_calls(server, before: int) -> list[dict]:
    lines = server.calls.read_text().splitlines()
    return [json.loads(line) for line in lines[before:]]


def calls_count(server) -> int:
    return len(server.calls.read_text().splitlines())


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.name)
def test_valid(corpus_server, case):
    expect = case.expect
    keep_alive = expect["keep_alive"]
    before = calls_count(corpus_server)
    data, closed = exchange(corpus_server, case.data + NEXT)
    assert closed, f"{case.id}: the server did not close the connection"
    responses = parse_responses(data, [expect["method"].encode()])
    assert len(responses) == (2 if keep_alive else 1), data[:300]
    status, headers, _ = responses[0]
    assert status == 200, data[:300]
    assert (headers.get("connection") == "close") is not keep_alive
    if keep_alive:
        assert responses[1][0] == 200
    calls = new_calls(corpus_server, before)
    requests = [c for c in calls if c["event"] == "request"]
    assert len(requests) == (2 if keep_alive else 1)
    # RFC 9112 9.6: nothing after a request that closes the connection is processed
    assert len(calls) == 2 * len(requests)
    seen = requests[0]
    for key in ("method", "path", "raw_path", "query_string", "http_version", "body"):
        assert seen[key] == expect[key], key
    assert seen["headers"] == expect["headers"]
    if keep_alive:
        assert requests[1]["raw_path"] == "/next"


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.name)
def test_invalid(corpus_server, case):
    before = calls_count(corpus_server)
    data, closed = exchange(corpus_server, case.data + NEXT)
    assert closed, f"{case.id}: the server did not close the connection"
    responses = parse_responses(data, [])
    assert [r[0] for r in responses] == [case.expect["status"]], data[:300]
    assert responses[0][1].get("connection") == "close"
    calls = new_calls(corpus_server, before)
    if case.expect["stage"] == "head":
        assert calls == []
    else:
        assert [c for c in calls if c["event"] == "request"] == []
