"""The benchmark app: one ASGI 3 callable that routes on the path, so each server is started
once per round and every scenario runs against the same process.

    GET  /         200 "Hello, world!"  text/plain with content-length (plaintext)
    GET  /json     200 {"message":"Hello, world!"}, serialised per request
    POST /echo     200 with the whole request body, read to the end first
    GET  /stream   200, 1 MiB as 16 x 64 KiB more_body messages, no content-length (chunked)
    websocket      echo every text / bytes message

It also answers lifespan, so no server logs a warning or takes another path at start-up.
The routing is one dict lookup: the same small cost for every server measured.
"""

import json as _json

HELLO = b"Hello, world!"
HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
HELLO_BODY = {"type": "http.response.body", "body": HELLO}
CHUNK = b"x" * 65536
CHUNKS = 16


async def plaintext(scope, receive, send):
    await send(HELLO_START)
    await send(HELLO_BODY)


async def json(scope, receive, send):
    body = _json.dumps({"message": "Hello, world!"}, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def echo(scope, receive, send):
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def stream(scope, receive, send):
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}
    )
    for i in range(CHUNKS):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": i < CHUNKS - 1})


async def websocket_echo(scope, receive, send):
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


ROUTES = {"/": plaintext, "/json": json, "/echo": echo, "/stream": stream}


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await ROUTES.get(scope["path"], plaintext)(scope, receive, send)
    elif kind == "websocket":
        await websocket_echo(scope, receive, send)
    else:
        await lifespan(scope, receive, send)
