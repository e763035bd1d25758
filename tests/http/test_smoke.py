"""Both workers, plain and TLS: the basic request/response cycle end to end."""

import json


def test_get_scope(server):
    with server.client() as client:
        response = client.get("/some%20path?x=1&y=%20")
    assert response.status_code == 200
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["path"] == "/some path"
    assert scope["raw_path"] == "/some%20path"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["method"] == "GET"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == server.scheme
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["root_path"] == ""
    assert scope["state"] == ["started"]
    assert ["host", f"127.0.0.1:{server.port}"] in scope["headers"]
    assert response.headers["server"] == "gworkers"
    assert "date" in response.headers


def test_post_echo_keepalive(server):
    with server.client() as client:
        for size in (0, 1, 1000, 200_000):
            body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
            response = client.post("/echo", content=body)
            assert response.status_code == 200
            assert response.content == body
        # chunked request body
        response = client.post("/echo", content=iter([b"a" * 10, b"b" * 70000, b"c"]))
        assert response.content == b"a" * 10 + b"b" * 70000 + b"c"


def test_chunked_and_streamed_response(server):
    with server.client() as client:
        response = client.get("/chunked")
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.content == b"one,two,three"
        response = client.get("/stream?40")
        assert len(response.content) == 40 * 65536


def test_json_scope_is_json(server):
    with server.client() as client:
        assert json.loads(client.get("/").content)["type"] == "http"
