"""WSGI apps under the ASGI server: a thread pool and a PEP 3333 environ.

The app runs in a worker thread. ``wsgi.input`` pulls the request body from the event loop
only when the app reads it, and each body chunk the app yields is sent (awaiting flow control)
before the next is taken, so nothing is buffered without bound in either direction.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

from .errors import ClientDisconnected
from .lifespan import answer_lifespan


class _Input(io.RawIOBase):
    """wsgi.input: a blocking, readable stream fed from ASGI ``receive`` on demand.

    Only what the app asks for is pulled from the loop, so an unread body stays in the
    connection's bounded buffer (reading from the socket pauses) instead of piling up here.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Callable) -> None:
        self.loop = loop
        self.receive = receive
        self.buffer = bytearray()  # deleting from the front of a bytearray does not copy
        self.done = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        if self.done:
            return False
        message = asyncio.run_coroutine_threadsafe(self.receive(), self.loop).result()
        if message["type"] != "http.request":
            self.done = True
            raise ClientDisconnected("client disconnected before the request body was read")
        self.buffer += message.get("body", b"")
        self.done = not message.get("more_body", False)
        return True

    def _take(self, n: int) -> bytes:
        buffer = self.buffer
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self.buffer))
        while len(self.buffer) < size and self._fill():
            pass
        return self._take(size)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        if size is None:
            size = -1
        scanned = 0
        while True:
            end = self.buffer.find(b"\n", scanned)
            if end >= 0:
                end += 1
                break
            scanned = len(self.buffer)
            if 0 <= size <= scanned or not self._fill():
                end = len(self.buffer)
                break
        if size >= 0:
            end = min(end, size)
        return self._take(end)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2.0"}

def build_environ(scope: dict, stream: Any) -> dict:
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client")
    script_name = scope.get("root_path", "").encode("utf-8")
    # PEP 3333: PATH_INFO is the percent-decoded *bytes* of the path, as latin-1; decoding
    # the raw path keeps bytes that are not UTF-8 (scope["path"] has replaced them).
    raw_path = scope.get("raw_path")
    path = unquote_to_bytes(raw_path) if raw_path else scope["path"].encode("utf-8")
    if script_name and path.startswith(script_name):
        path = path[len(script_name) :]
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name.decode("latin-1"),
        "PATH_INFO": path.decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "RAW_URI": scope["raw_path"].decode("latin-1")
        + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]) if server[1] is not None else "0",
        # "HTTP/2.0" as Gunicorn writes it (its access log and WSGI environ), not ASGI's "2"
        "SERVER_PROTOCOL": _PROTOCOLS.get(scope["http_version"]) or f"HTTP/{scope['http_version']}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": stream,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        # wsgi.input returns b"" at the body's end (chunked bodies included), so an app may
        # read it without a CONTENT_LENGTH; Werkzeug reads nothing of such a body without this
        "wsgi.input_terminated": True,
    }
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        val = value.decode("latin-1")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            environ[key] = val
            continue
        key = "HTTP_" + key
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + val
        else:
            environ[key] = val
    return environ


class WSGIMiddleware:
    def __init__(self, app: Callable, workers: int = 10) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wsgi")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await answer_lifespan(receive, send)
        if kind != "http":
            await send({"type": "websocket.close", "code": 1000})
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self._run, loop, scope, receive, send)

    def _run(self, loop: asyncio.AbstractEventLoop, scope: dict, receive: Callable, send: Callable) -> None:
        def call(message: dict) -> None:
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        environ = build_environ(scope, _Input(loop, receive))
        state: dict[str, Any] = {"started": False, "start": None}

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            if exc_info is not None and state["started"]:
                raise exc_info[1].with_traceback(exc_info[2])
            code = int(status.split(" ", 1)[0])
            state["start"] = {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
                ],
            }
            return write

        def write(data: bytes) -> None:
            if not state["started"]:
                call(state["start"])
                state["started"] = True
            if data:
                call({"type": "http.response.body", "body": data, "more_body": True})

        result: Iterable[bytes] = self.app(environ, start_response)
        try:
            for chunk in result:
                if chunk:
                    write(chunk)
                elif not state["started"] and state["start"] is not None:
                    pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not state["started"]:
            if state["start"] is None:
                raise RuntimeError("WSGI app did not call start_response")
            call(state["start"])
        call({"type": "http.response.body", "body": b"", "more_body": False})
