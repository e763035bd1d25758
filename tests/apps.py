"""Apps the test servers run. Each behaviour is picked by the request path."""

from __future__ import annotations

import asyncio
import json
import os
import time


def _jsonable(scope: dict) -> dict:
    out = {}
    for key, value in scope.items():
        if key == "headers":
            out[key] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in value]
        elif isinstance(value, bytes):
            out[key] = value.decode("latin-1")
        elif key in ("state", "extensions"):
            out[key] = sorted(value) if isinstance(value, dict) else value
        elif isinstance(value, str | int | float | list | tuple | dict | type(None)):
            out[key] = value
    return out


async def _lifespan(scope, receive, send, state=None):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if state is not None and "state" in scope:
                scope["state"].update(state)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            marker = os.environ.get("GW_TEST_SHUTDOWN_MARKER")
            if marker:
                with open(marker, "a") as f:
                    f.write(f"lifespan shutdown {os.getpid()}\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send, status=200, body=b"", headers=None, content_type=b"text/plain"):
    hdrs = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if headers:
        hdrs += headers
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        return await _lifespan(scope, receive, send, {"started": "yes"})
    if kind != "http":
        return await ws_echo(scope, receive, send)
    path = scope["path"]
    query = scope["query_string"].decode()
    if path == "/echo":
        body = await read_body(receive)
        return await respond(send, body=body)
    if path == "/noread":
        return await respond(send, body=b"did not read")
    if path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/stream":
        n = int(query or "16")
        chunk = b"x" * 65536
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(n):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/raise":
        raise RuntimeError("boom before start")
    if path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after start")
    if path == "/no-response":
        return
    if path == "/cl-short":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"short"})
        return
    if path == "/cl-long":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
        await send({"type": "http.response.body", "body": b"toolong"})
        return
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        await send({"type": "http.response.start", "status": status, "headers": [(b"x-status", str(status).encode())]})
        await send({"type": "http.response.body", "body": b"body for %d" % status})
        return
    if path == "/te-app":
        # the app's own Transfer-Encoding must be ignored
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"transfer-encoding", b"chunked"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if path == "/bad-header":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-evil", b"a\r\nset-cookie: x=1")]})
        await send({"type": "http.response.body", "body": b"never"})
        return
    if path == "/sleep":
        await asyncio.sleep(float(query or "1"))
        return await respond(send, body=b"slept")
    if path == "/block":
        time.sleep(float(query or "5"))
        return await respond(send, body=b"blocked")
    if path == "/disconnect":
        # answer, then report whether http.disconnect arrives after the response
        marker = os.environ.get("GW_TEST_DISCONNECT_MARKER")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
        message = await receive()
        message = await receive() if message["type"] == "http.request" else message
        if marker:
            with open(marker, "a") as f:
                f.write(message["type"] + "\n")
        return
    if path == "/wait-disconnect":
        # the client goes away before any response: receive() must say so
        body = await read_body(receive) if False else None  # noqa: F841
        message = await receive()
        while message["type"] == "http.request":
            message = await receive()
        marker = os.environ.get("GW_TEST_DISCONNECT_MARKER")
        if marker:
            with open(marker, "a") as f:
                f.write(message["type"] + "\n")
        return
    if path == "/pid":
        return await respond(send, body=str(os.getpid()).encode())
    if path == "/server-header":
        return await respond(send, body=b"own server header", headers=[(b"server", b"mine")])
    if path == "/gate":
        # answer once the test creates the gate file (the test decides when, not a timer)
        gate = os.environ["GW_TEST_GATE"]
        while not os.path.exists(gate):
            await asyncio.sleep(0.01)
        return await respond(send, body=b"gate open")
    if path == "/send-after-disconnect":
        # ASGI 2.4: send() after the client went away raises an OSError subclass
        marker = os.environ["GW_TEST_DISCONNECT_MARKER"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        try:
            await send({"type": "http.response.body", "body": b"late", "more_body": True})
            outcome = "no error"
        except OSError as exc:
            outcome = f"OSError {type(exc).__name__}"
        with open(marker, "a") as f:
            f.write(outcome + "\n")
        return
    if path == "/types":
        # the scope's types, checked where they are (JSON would blur bytes and str)
        checks = {
            "headers": all(type(n) is bytes and type(v) is bytes and n == n.lower()
                           for n, v in scope["headers"]),
            "headers_iterable": isinstance(scope["headers"], list | tuple),
            "raw_path": type(scope["raw_path"]) is bytes,
            "query_string": type(scope["query_string"]) is bytes,
            "path": type(scope["path"]) is str,
            "client": type(scope["client"]) in (list, tuple) and len(scope["client"]) == 2,
            "server": type(scope["server"]) in (list, tuple) and len(scope["server"]) == 2,
            "state": type(scope["state"]) is dict,
            "extensions": type(scope["extensions"]) is dict,
        }
        return await respond(send, body=json.dumps(checks).encode())
    if path == "/state-mutate":
        # changes to a request's state must not leak into the next request or lifespan state
        before = sorted(scope["state"])
        scope["state"]["mutated"] = True
        scope["state"].pop("started", None)
        return await respond(send, body=json.dumps(before).encode())
    if path == "/impl":
        loop = asyncio.get_running_loop()
        return await respond(send, body=type(loop).__module__.encode())
    if path == "/count":
        # read the body as it comes, pausing between pieces, keep only its size
        total = 0
        pace = float(query or "0")
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            total += len(message.get("body", b""))
            if pace:
                await asyncio.sleep(pace)
            if not message.get("more_body", False):
                break
        return await respond(send, body=str(total).encode())
    if path == "/stream-watch":
        # stream ?N chunks of 64 KiB; record in the marker file whether a send had to wait
        n = int(query or "800")
        marker = os.environ["GW_TEST_STREAM_MARKER"]
        chunk = b"x" * 65536
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % (n * len(chunk)))]})
        for i in range(n):
            pending = asyncio.ensure_future(
                send({"type": "http.response.body", "body": chunk, "more_body": i < n - 1}))
            await asyncio.sleep(0)
            if not pending.done():
                with open(marker, "a") as f:
                    f.write(f"blocked {i}\n")
            await pending
        with open(marker, "a") as f:
            f.write("done\n")
        return
    # default: describe the request
    body = json.dumps(_jsonable(scope)).encode()
    return await respond(send, body=body, content_type=b"application/json")


def _record(entry: dict) -> None:
    calls = os.environ.get("GW_TEST_CALLS")
    if calls:
        with open(calls, "a") as f:
            f.write(json.dumps(entry) + "\n")


async def corpus_app(scope, receive, send):
    """The raw-request corpus's app: records every call and every complete request it sees
    (one JSON line each, in the file GW_TEST_CALLS names) and answers with the request."""
    if scope["type"] == "lifespan":
        return await _lifespan(scope, receive, send)
    _record({"event": "call", "raw_path": scope["raw_path"].decode("latin-1")})
    try:
        body = await read_body(receive)
    except ConnectionError:
        return  # the server refused the body: nothing to answer
    keys = ("method", "path", "raw_path", "query_string", "http_version", "headers")
    request = {k: v for k, v in _jsonable(scope).items() if k in keys}
    request["body"] = body.decode("latin-1")
    _record({"event": "request", **request})
    await respond(send, body=json.dumps(request).encode(), content_type=b"application/json")


async def ws_echo(scope, receive, send):
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def asgi2_app(scope):
    async def instance(receive, send):
        if scope["type"] == "lifespan":
            return await _lifespan(scope, receive, send)
        await respond(send, body=b"asgi2 " + scope["path"].encode())

    return instance


def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
    elif environ["PATH_INFO"] == "/environ":
        keep = {k: v for k, v in environ.items() if isinstance(v, str)}
        body = json.dumps(keep).encode()
    elif environ["PATH_INFO"] == "/raise":
        raise RuntimeError("wsgi boom")
    elif environ["PATH_INFO"] == "/types":
        stream = environ["wsgi.input"]
        body = json.dumps({
            "wsgi.version": environ["wsgi.version"] == (1, 0),
            "all_str": all(type(k) is str and type(v) is str
                           for k, v in environ.items() if not k.startswith("wsgi.")),
            "input": callable(stream.read) and callable(stream.readline)
            and callable(stream.readlines) and hasattr(stream, "__iter__"),
            "errors": callable(environ["wsgi.errors"].write),
            "multithread": environ["wsgi.multithread"] is True,
            "run_once": environ["wsgi.run_once"] is False,
            "input_terminated": environ.get("wsgi.input_terminated") is True,
        }).encode()
    elif environ["PATH_INFO"] == "/read-pieces":
        # read the body in small pieces; report its size and digest
        import hashlib

        digest = hashlib.sha256()
        total = 0
        stream = environ["wsgi.input"]
        while True:
            piece = stream.read(4096)
            if not piece:
                break
            total += len(piece)
            digest.update(piece)
        body = f"{total} {digest.hexdigest()}".encode()
    elif environ["PATH_INFO"] == "/lines":
        body = json.dumps([line.decode() for line in environ["wsgi.input"]]).encode()
    elif environ["PATH_INFO"] == "/generator":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def parts():
            yield b"gen-"
            yield b""
            yield b"erated"

        return parts()
    elif environ["PATH_INFO"] == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written,")
        return [b"returned"]
    else:
        body = b"wsgi " + environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def failing_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await respond(send, body=b"never")


async def raising_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup raised")
    await respond(send, body=b"never")


async def no_lifespan(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("only http")
    await respond(send, body=b"no lifespan")


def factory():
    return app
