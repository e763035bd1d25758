"""A real Starlette app for the client-gone tests: its StreamingResponse turns the OSError a
``send`` raises after the client left (ASGI spec 2.4) into its own ``ClientDisconnect``, and its
FileResponse sends ``http.response.pathsend`` when the server advertises it."""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.responses import FileResponse, StreamingResponse
from starlette.routing import Route


async def stream(request):
    """A large download in 64 KiB pieces (the client leaves long before the end)."""

    async def body():
        piece = b"x" * 65536
        for _ in range(64 * 1024):
            yield piece

    return StreamingResponse(body(), media_type="application/octet-stream")


async def events(request):
    """Server-sent events, one every few milliseconds, until the client closes the stream."""

    async def body():
        for n in range(1_000_000):
            yield f"data: {n}\n\n"
            await asyncio.sleep(0.005)

    return StreamingResponse(body(), media_type="text/event-stream")


async def download(request):
    """A large file, sent with pathsend (the file is named by ``$GW_BIG_FILE``)."""
    return FileResponse(os.environ["GW_BIG_FILE"])


async def boom(request):
    raise RuntimeError("starlette boom")


async def boom_midway(request):
    """A real error after the response started, on a live connection."""

    async def body():
        yield b"first piece\n"
        raise RuntimeError("starlette boom midway")

    return StreamingResponse(body(), media_type="text/plain")


app = Starlette(routes=[
    Route("/stream", stream),
    Route("/events", events),
    Route("/download", download),
    Route("/boom", boom),
    Route("/boom-midway", boom_midway),
])
