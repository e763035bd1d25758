"""The app the gworkers-run tests serve: each path reports one thing a command-line option changes."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import time

# Set at import, in the worker's main context: visible to requests unless --reset-contextvars.
marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="fresh")
marker.set("inherited")


async def _respond(send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["lifespan"] = "ran"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text"),
                        "bytes": message.get("bytes")})
    query = scope["query_string"].decode()
    started = os.environ.get("GW_CLI_STARTED")
    if started and scope["path"] in ("/sleep", "/block"):
        with open(started, "a") as f:  # lets a test know the request is in the app
            f.write(f"{scope['path']} {os.getpid()}\n")
    if scope["path"] == "/sleep":
        await asyncio.sleep(float(query or "1"))
    elif scope["path"] == "/block":
        time.sleep(float(query or "1"))
    body = json.dumps({
        "pid": os.getpid(),
        "loop": type(asyncio.get_running_loop()).__module__,
        "env": os.environ.get("GW_CLI_ENV"),
        "marker": marker.get(),
        "root_path": scope.get("root_path"),
        "client": scope.get("client"),
        "scheme": scope.get("scheme"),
        "state": sorted(scope.get("state") or {}),
    }).encode()
    await _respond(send, body)


def make_app():
    """A factory (--factory): records each call, one line per call, in $GW_CLI_FACTORY_LOG."""
    path = os.environ.get("GW_CLI_FACTORY_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\n")
    return app
