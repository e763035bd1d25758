"""WebSocket apps the test servers run; the behaviour is picked by the path.

What the app saw (disconnect codes, exceptions, progress) goes to the file named by the
``GW_WS_MARKER`` environment variable, one ``path value...`` line each.
"""

from __future__ import annotations

import asyncio
import json
import os


def record(*words: object) -> None:
    marker = os.environ.get("GW_WS_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write(" ".join(str(w) for w in words) + "\n")


async def _until_disconnect(receive) -> dict:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return message


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        body = b"http " + scope["path"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
        return
    path = scope["path"]
    kind = "/" + path.split("/")[1]  # /disconnect/<tag>: the tag names the test's marker line
    message = await receive()
    if message["type"] != "websocket.connect":
        raise RuntimeError(f"expected websocket.connect, got {message}")
    if kind == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"x-denied", b"yes"), (b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"away"})
        return
    if kind == "/close-before-accept":
        await send({"type": "websocket.close"})
        return
    if kind == "/raise-before-accept":
        raise RuntimeError("this app serves HTTP only")
    if kind == "/subprotocol":
        offered = scope["subprotocols"]
        chosen = "b" if "b" in offered else None
        await send({"type": "websocket.accept", "subprotocol": chosen,
                    "headers": [(b"x-extra", b"yes")]})
        await send({"type": "websocket.send", "text": json.dumps(offered)})
        await _until_disconnect(receive)
        return
    await send({"type": "websocket.accept"})
    if kind == "/scope":
        out = {k: v for k, v in scope.items() if k not in ("headers", "state", "extensions")}
        out["raw_path"] = scope["raw_path"].decode("latin-1")
        out["query_string"] = scope["query_string"].decode("latin-1")
        out["extensions"] = sorted(scope["extensions"])
        out["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        await send({"type": "websocket.send", "text": json.dumps(out)})
    elif kind == "/close-code":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        message = await receive()
        record(path, message["type"], message.get("code"))
        return
    elif kind == "/raise":
        raise RuntimeError("boom after accept")
    elif kind == "/return":
        return
    elif kind == "/disconnect":
        message = await _until_disconnect(receive)
        record(path, message["code"], json.dumps(message.get("reason", "")))
        return
    elif kind == "/send-after-close":
        message = await _until_disconnect(receive)
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            record(path, type(exc).__name__, "OSError")
        else:
            record(path, "no-error")
        return
    elif kind == "/flood":
        count = int(scope["query_string"] or b"200")
        chunk = b"x" * (1024 * 1024)
        for i in range(count):
            await send({"type": "websocket.send", "bytes": chunk})
            record(path, i + 1)
        await send({"type": "websocket.close", "code": 1000})
        return
    elif kind == "/slow-reader":
        # takes one message, then stops receiving for a while: the queue fills up
        await receive()
        record(path, "first")
        await asyncio.sleep(float(scope["query_string"] or b"30"))
        message = await _until_disconnect(receive)
        record(path, message["code"])
        return
    elif kind == "/shutdown":
        record(path, "accepted")
        message = await _until_disconnect(receive)
        record(path, message["code"])
        return
    # echo (default)
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(path, message["code"])
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
