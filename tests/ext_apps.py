"""Apps that use the ASGI HTTP extensions; the file to send is named by env GW_TEST_FILE."""

from __future__ import annotations

import json
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = scope["query_string"].decode()
    name = os.environ.get("GW_TEST_FILE", "")
    if path == "/extensions":
        exts = scope["extensions"]
        tls = exts.get("tls")
        body = json.dumps({"names": sorted(exts), "tls": tls}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/pathsend":
        headers = [(b"content-type", b"application/octet-stream")]
        if query != "nolength":
            headers.append((b"content-length", b"%d" % os.path.getsize(name)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": name})
        return
    if path == "/pathsend-missing":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": name + ".missing"})
        return
    if path == "/pathsend-relative":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "../etc/passwd"})
        return
    if path == "/zerocopy":
        # two slices of the file: [10, 10+1000) then from 5000 to the end
        size = os.path.getsize(name)
        length = 1000 + (size - 5000)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % length)]})
        with open(name, "rb") as f:
            await send({"type": "http.response.zerocopysend", "file": f, "offset": 10,
                        "count": 1000, "more_body": True})
            f.seek(5000)
            await send({"type": "http.response.zerocopysend", "file": f})
        return
    if path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        await send({"type": "http.response.body", "body": b" world"})
        await send({"type": "http.response.trailers",
                    "headers": [(b"x-checksum", b"abc123")], "more_trailers": False})
        return
    if path == "/trailers-undeclared":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})
        await send({"type": "http.response.trailers", "headers": [(b"x-a", b"b")]})
        return
    if path == "/early-hints":
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload"]})
        body = b"final"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
