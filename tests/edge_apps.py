"""Apps for the hardened-edge tests: every call is recorded in a marker file.

``$GW_EDGE_MARKER`` gets one line per app call (``<method> <path>``), so a test can prove the
app was never called for a refused request. ``/hold`` waits until ``$GW_EDGE_RELEASE`` exists
(it stands for a slow request; the test releases it), ``/echo`` reads the body, anything else
answers the scope as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os

from tests.apps import _jsonable, read_body, respond


def _mark(line: str) -> None:
    marker = os.environ.get("GW_EDGE_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write(line + "\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    _mark(f"{scope.get('method', 'WS')} {scope['path']}")
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        release = os.environ["GW_EDGE_RELEASE"]
        while not os.path.exists(release):
            await asyncio.sleep(0.02)
        return await respond(send, body=b"held")
    if scope["path"] == "/echo":
        body = await read_body(receive)
        return await respond(send, body=b"%d" % len(body))
    body = json.dumps(_jsonable(scope)).encode()
    return await respond(send, body=body, content_type=b"application/json")
