"""The app the HTTP/2 tests serve: tests.apps and tests.ext_apps, plus a few paths of its own.

Markers and gates are files named by environment variables, so the test decides when something
happens and the app reports what it saw, without timers.
"""

from __future__ import annotations

import asyncio
import os

from tests import apps, ext_apps

_EXT = {"/extensions", "/pathsend", "/zerocopy", "/trailers", "/early-hints"}
_waiting: list[asyncio.Future] = []
_events: dict[str, asyncio.Event] = {}


def _browser_ws_closed() -> asyncio.Event:
    """Set once the browser's WebSocket (``/ws-page``) has ended."""
    return _events.setdefault("browser-ws", asyncio.Event())


def _mark(line: str) -> None:
    with open(os.environ["GW_TEST_MARKER"], "a") as f:
        f.write(line + "\n")


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        _mark(f"websocket over {scope['http_version']}")
        if scope["path"] == "/ws-browser":
            try:
                return await apps.app(scope, receive, send)  # echo until the browser closes
            finally:
                _browser_ws_closed().set()
    if scope["type"] != "http":
        return await apps.app(scope, receive, send)
    path = scope["path"]
    query = scope["query_string"].decode()
    if path in _EXT:
        return await ext_apps.app(scope, receive, send)
    if path == "/barrier":
        # answers once ?N requests are in the app at the same time: proves concurrent streams
        n = int(query)
        future = asyncio.get_running_loop().create_future()
        _waiting.append(future)
        if len(_waiting) >= n:
            for waiter in _waiting[:n]:
                waiter.set_result(None)
            del _waiting[:n]
        await future
        return await apps.respond(send, body=b"together")
    if path == "/hold":
        # never answers; records what receive() says once the client resets the stream
        _mark("entered")
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                _mark("http.disconnect")
                return
    if path == "/hold-unread":
        # takes the request, reads none of its body, answers once the gate file exists
        _mark("entered unread")
        gate = os.environ["GW_TEST_GATE"]
        while not os.path.exists(gate):
            await asyncio.sleep(0.01)
        return await apps.respond(send, body=b"gate open")
    if path == "/answer-then-linger":
        # answers at once, then its app call goes on (clean-up work) until the gate file exists
        await apps.respond(send, body=b"answered")
        _mark("lingering")
        gate = os.environ["GW_TEST_GATE"]
        while not os.path.exists(gate):
            await asyncio.sleep(0.01)
        _mark("lingered")
        return None
    if path == "/started-then-read":
        # the response begins before the body is read; records how the body ended
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                _mark(f"read ended: {message['type']}")
                break
        if message["type"] == "http.request":
            await send({"type": "http.response.body", "body": b" done"})
        return
    if path == "/grpc.Echo/Stream":
        return await _grpc_stream(scope, receive, send)
    if path == "/page":
        # a browser's page: the protocol the request came over, in the DOM
        html = (f"<html><body><p id=proto>http_version={scope['http_version']}</p>"
                "</body></html>").encode()
        _mark(f"page over {scope['http_version']}")
        return await apps.respond(send, body=html, content_type=b"text/html")
    if path == "/ws-page":
        # a browser's page that opens a WebSocket to this server and shows the echo; the
        # script after it is answered once the page's WebSocket has closed, so the load event
        # (which --dump-dom waits for) comes after the echo reached the DOM: no timers
        html = (b"<html><body><p id=ws>waiting</p><script>"
                b"const out = document.getElementById('ws');"
                b"const ws = new WebSocket('wss://' + location.host + '/ws-browser');"
                b"ws.onopen = () => ws.send('hello from the browser');"
                b"ws.onmessage = (e) => { out.textContent = 'echo: ' + e.data; ws.close(); };"
                b"ws.onerror = () => { out.textContent = 'error'; ws.close(); };"
                b"</script><script src='/after-ws'></script></body></html>")
        return await apps.respond(send, body=html, content_type=b"text/html")
    if path == "/after-ws":
        await _browser_ws_closed().wait()
        return await apps.respond(send, body=b"", content_type=b"text/javascript")
    if path == "/cookies":
        cookies = [v for n, v in scope["headers"] if n == b"cookie"]
        return await apps.respond(send, body=b"|".join(cookies))
    return await apps.app(scope, receive, send)


async def _grpc_stream(scope, receive, send):
    """gRPC-shaped bidirectional streaming: each length-prefixed message is answered upper-cased
    as soon as it is whole (so a client can wait for one answer before it sends the next),
    then trailers with grpc-status. The HTTP version the app saw rides in a header."""
    await send({"type": "http.response.start", "status": 200, "trailers": True, "headers": [
        (b"content-type", b"application/grpc"),
        (b"x-http-version", scope["http_version"].encode())]})
    buffer = b""
    count = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        buffer += message.get("body", b"")
        while len(buffer) >= 5 and len(buffer) >= 5 + int.from_bytes(buffer[1:5], "big"):
            size = int.from_bytes(buffer[1:5], "big")
            payload, buffer = buffer[5:5 + size], buffer[5 + size:]
            count += 1
            await send({"type": "http.response.body", "body": b"\0" + size.to_bytes(4, "big")
                        + payload.upper(), "more_body": True})
        if not message.get("more_body"):
            break
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    await send({"type": "http.response.trailers", "headers": [
        (b"grpc-status", b"0"), (b"x-messages", str(count).encode())]})
