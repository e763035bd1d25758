"""The ONE ASGI HTTP request/response stream, whatever protocol carries it.

One ``HTTPStream`` per request: the ``receive``/``send`` pair the app is called with, and the
``run`` coroutine a protocol starts as the request's Task. It owns ASGI message order as an
explicit ``State``, 100-continue intent (asked for only when the app first waits for the body),
body suppression for HEAD/204/304, Content-Length accounting, the 500 when the app fails, and the
ASGI side of every extension (pathsend, zerocopysend, trailers, early hints). It knows no framing
and imports no connection, server or parser: it talks to its protocol through a
``ResponseSink`` (``sink.py``), and the protocol pushes request events in with ``on_body``,
``on_body_end``, ``on_disconnect`` and ``on_eof``.
"""

from __future__ import annotations

import asyncio
import enum
import os
from typing import Any

from ..errors import AppProtocolError, ClientDisconnected
from ..flow import wake
from .fields import check_header, response_head
from .sink import ResponseSink


class State(enum.Enum):
    """Where the response is in ASGI's message order."""

    AWAITING_START = 0  # nothing sent; early hints allowed
    SENDING_BODY = 1  # http.response.start seen: body, pathsend, zerocopysend
    SENDING_TRAILERS = 2  # the body ended and trailers were announced
    DONE = 3  # complete, failed, or answered by the protocol: every further send is an error


AWAITING_START = State.AWAITING_START
SENDING_BODY = State.SENDING_BODY
SENDING_TRAILERS = State.SENDING_TRAILERS
DONE = State.DONE

_DISCONNECT = {"type": "http.disconnect"}


class HTTPStream:
    """One request's ASGI cycle over a ``ResponseSink``.

    ``scope`` is the finished HTTP scope (the protocol built it); ``body_complete`` False when
    a request body is still to come (pushed with ``on_body``/``on_body_end``);
    ``continue_owed`` True while the client waits for ``100 Continue`` before sending it.
    ``context`` is the worker's read-only context (loop, log, defaults, access bridge, app
    calls). ``access`` is the access-log record, set by the access bridge when one is on.
    """

    __slots__ = (
        "__weakref__", "access", "app_entered", "body", "body_complete", "buffered",
        "context", "continue_owed", "delivered", "disconnected", "eof", "has_body",
        "length_left", "overrun", "scope", "sink", "state", "trailers", "waiter",
    )

    # set by http.response.start (read only from then on): the response has content (not
    # HEAD/204/304), its declared length not yet sent, whether the app offered more than it
    # declared (cut at the end), whether trailers end it
    has_body: bool
    length_left: int | None
    overrun: bool
    trailers: bool

    def __init__(self, sink: ResponseSink, scope: dict, context: Any, body_complete: bool,
                 continue_owed: bool) -> None:
        self.sink = sink
        self.scope = scope
        self.context = context
        self.body_complete = body_complete
        self.continue_owed = continue_owed
        self.state = AWAITING_START
        # request body bytes received and not yet handed to the app: a list from the first
        # chunk on (most requests have no body: no list allocated for them)
        self.body: list[bytes] | tuple = ()
        self.buffered = 0  # request body bytes received and not yet handed to the app
        self.delivered = False  # the whole request body reached the app
        self.waiter: asyncio.Future | None = None  # what the app's receive() waits on
        self.disconnected = False
        self.eof = False
        self.app_entered = False  # the app's Task has run once (the protocol may hold writes)
        self.access: Any = None
        # has_body, length_left, overrun and trailers are set by http.response.start

    # ------------------------------------------------------------------ pushed by the protocol
    def on_body(self, data: bytes) -> None:
        """Request body bytes, in order."""
        if self.body:
            self.body.append(data)
        else:
            self.body = [data]
        self.buffered += len(data)
        if self.waiter is not None:
            self._wake()

    def on_body_end(self) -> None:
        """The request body is complete."""
        self.body_complete = True
        if self.waiter is not None:
            self._wake()

    def on_disconnect(self) -> None:
        """The client is gone: receive() answers http.disconnect, send() raises."""
        self.disconnected = True
        self._wake()

    def on_eof(self) -> None:
        """The client sends nothing more but may still read: after the body, disconnect."""
        self.eof = True
        self._wake()

    def answered(self, status: int | None) -> None:
        """The protocol answered this request itself (503 at the concurrency cap, 400 for a
        broken body), or dropped it (None): the app's response, if any, goes nowhere."""
        if self.state is DONE:
            return
        if status is not None and self.access is not None:
            self.access.response(status, ())
        self._done()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        wake(waiter)

    def _done(self) -> None:
        """The response is complete: the access log and post_request hook, a waiting receive."""
        self.state = DONE
        if self.access is not None:
            self.context.access.finish(self)
        if self.waiter is not None:
            self._wake()

    # ------------------------------------------------------------------ the app call
    async def run(self, app: Any) -> None:
        """Call the app; a failure before the response is on the wire is answered 500.

        The app call counts as in progress (``limit_concurrency``, the drain) until it returns,
        whatever happened to the connection.
        """
        self.app_entered = True
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self._app_failed(exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        else:
            if self.state is not DONE:
                self._app_failed(None)
        finally:
            self.context.calls.running -= 1  # calls.finished(), inline: every request

    def _app_failed(self, exc: BaseException | None) -> None:
        log = self.context.log
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            pass  # the process is leaving (heartbeat abort): not the app's error
        elif self.disconnected:
            # The client left first: whatever the app made of that (our ClientDisconnected,
            # Starlette's ClientDisconnect, an OSError, a cancellation) is no app error.
            log.debug("ASGI app stopped: client disconnected (%s)",
                      "returned" if exc is None else type(exc).__name__)
        elif exc is None:
            log.error("ASGI app returned without completing the response")
        elif isinstance(exc, asyncio.CancelledError) and self.context.registry.draining:
            log.debug("ASGI app call cancelled at the end of the drain")  # counted in its warning
        else:
            log.error("Exception in ASGI application", exc_info=exc)
        if self.state is DONE:
            return
        answered = self.sink.fail(None if self.disconnected else 500)
        if answered and self.access is not None:
            self.access.response(500, ())  # what the access log must say was sent
        self.disconnected = True
        self._done()

    # ------------------------------------------------------------------ ASGI receive
    async def receive(self) -> dict[str, Any]:
        while True:
            if self.disconnected or self.state is DONE:
                return _DISCONNECT
            if self.delivered:
                if self.eof:
                    # the peer half-closed after its request: once told, the client is gone
                    self.disconnected = True
                    return _DISCONNECT
            else:
                body = self.body
                if body or self.body_complete:
                    data = body[0] if len(body) == 1 else b"".join(body)
                    if body:
                        self.body = ()
                        self.sink.consumed(self.buffered)
                        self.buffered = 0
                    if self.body_complete:
                        self.delivered = True
                        return {"type": "http.request", "body": data, "more_body": False}
                    return {"type": "http.request", "body": data, "more_body": True}
                if self.continue_owed:
                    self.continue_owed = False
                    if self.state is AWAITING_START:
                        self.sink.informational(100, ())
                self.sink.consumed(0)
            # wait for body, the end of the response, or the client going away
            self.waiter = self.context.loop.create_future()
            await self.waiter

    # ------------------------------------------------------------------ ASGI send
    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if self.state is not SENDING_BODY:
                raise self._order_error("http.response.body")
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            waiter = self._body(message.get("body", b""), message.get("more_body", False))
            if waiter is not None:
                await waiter
        elif kind == "http.response.start":
            # (the start is handled here rather than in a method of its own: one call less on
            # every response, ~150 instructions)
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            if self.state is not AWAITING_START:
                raise AppProtocolError("http.response.start sent twice")
            status = message["status"]
            headers = message.get("headers", ())
            if type(headers) is not list and type(headers) is not tuple:
                headers = list(headers)  # any iterable, read once
            defaults = self.context.defaults
            try:
                head = defaults.heads.get((status, *headers)) if type(status) is int else None
            except TypeError:  # unhashable headers (list pairs): classified every time
                head = None
            if head is None:
                head = response_head(status, headers, defaults)
            self.has_body = has_body = head.content and self.scope["method"] != "HEAD"
            self.length_left = head.length if has_body else 0
            # (no bool() call: ~100 instructions per response)
            self.trailers = trailers = True if message.get("trailers") else False
            self.overrun = False
            self.state = SENDING_BODY
            if self.access is not None:
                self.access.response(status, headers)
            self.sink.start(head, has_body, trailers)
            self.continue_owed = False  # (the sink read it: a client still waiting is told no)
        elif kind == "http.response.trailers":
            self._trailers(message)
        elif kind == "http.response.pathsend":
            await self._pathsend(message)
        elif kind == "http.response.zerocopysend":
            await self._zerocopysend(message)
        elif kind == "http.response.early_hint":
            self._early_hint(message)
        else:
            raise AppProtocolError(f"unexpected ASGI message type {kind!r}")

    def _order_error(self, what: str) -> Exception:
        state = self.state
        if state is AWAITING_START:
            return AppProtocolError(f"{what} sent before http.response.start")
        if state is SENDING_TRAILERS:
            return AppProtocolError(f"{what} sent after the body ended (trailers announced)")
        return AppProtocolError(f"{what} sent after the response completed")

    def _body(self, data: bytes, more: bool) -> Any:
        """Account for the declared length, then hand the bytes to the sink."""
        n = len(data)
        left = self.length_left
        if left is not None:
            if n > left:
                if self.has_body:
                    # never write past the declared length: the message would be malformed
                    if left:
                        self.sink.body(data[:left], True)
                        if self.access is not None:
                            self.access.sent += left
                    self.length_left = 0
                    self.overrun = True
                    raise AppProtocolError("response body longer than its Content-Length")
                data = b""  # HEAD, 204, 304: the body is dropped
                n = 0
            left -= n
            self.length_left = left
        access = self.access
        if access is not None:
            access.sent += n
        if more:
            return self.sink.body(data, True)
        if self.trailers:
            self.state = SENDING_TRAILERS
            return self.sink.body(data, False)
        if left or self.overrun:
            self._cut(data)
            return None
        # self._done(), inline: the end of nearly every response
        self.state = DONE
        if access is not None:
            self.context.access.finish(self)
        if self.waiter is not None:
            self._wake()
        return self.sink.body(data, False)

    def _cut(self, data: bytes) -> None:
        """The body ended short of (or past) what the head declared: the client cannot frame
        what follows, so the protocol cuts the response instead of ending it cleanly."""
        self.sink.body(data, True)
        self.sink.fail(None)
        self._done()

    def _trailers(self, message: dict[str, Any]) -> None:
        if self.state is AWAITING_START or not self.trailers:
            raise AppProtocolError("http.response.trailers without trailers: True in start")
        if self.state is not SENDING_TRAILERS:
            raise AppProtocolError("http.response.trailers before the body ended")
        headers = message.get("headers", ())
        for name, value in headers:
            check_header(name, value)
        if message.get("more_trailers", False):
            raise AppProtocolError("more_trailers is not supported")
        if self.length_left or self.overrun:
            self._cut(b"")
            return
        self._done()
        self.sink.trailers(headers)

    # ------------------------------------------------------------------ extensions
    def _early_hint(self, message: dict[str, Any]) -> None:
        if self.state is not AWAITING_START:
            raise AppProtocolError("http.response.early_hint after http.response.start")
        links = message.get("links", ())
        if not links or self.disconnected:
            return
        for link in links:
            check_header(b"link", link)
        self.sink.informational(103, [(b"link", link) for link in links])

    def _check_file(self, what: str) -> None:
        if self.state is not SENDING_BODY:
            raise self._order_error(f"http.response.{what}")
        if self.disconnected:
            raise ClientDisconnected("client disconnected")

    async def _pathsend(self, message: dict[str, Any]) -> None:
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise AppProtocolError(f"http.response.pathsend needs an absolute path, got {path!r}")
        self._check_file("pathsend")
        # a missing file raises here, before anything of the response is on the wire
        with open(path, "rb") as file:
            fd = file.fileno()
            await self._file(fd, 0, os.fstat(fd).st_size, False)

    async def _zerocopysend(self, message: dict[str, Any]) -> None:
        file = message.get("file")
        if file is None or not hasattr(file, "fileno"):
            raise AppProtocolError("http.response.zerocopysend needs a file object")
        self._check_file("zerocopysend")
        fd = file.fileno()
        offset = message.get("offset")
        advance = offset is None
        if advance:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        count = message.get("count")
        if count is None:
            count = max(os.fstat(fd).st_size - offset, 0)
        sent = await self._file(fd, offset, count, message.get("more_body", False))
        if advance:
            os.lseek(fd, offset + sent, os.SEEK_SET)

    async def _file(self, fd: int, offset: int, count: int, more: bool) -> int:
        """Send ``count`` bytes of ``fd`` as body, within the declared length."""
        left = self.length_left
        if not self.has_body:
            count = 0
        elif left is not None:
            if count > left:
                count = left
                self.overrun = True  # the app promised less than the file holds
            self.length_left = left - count
        cut = end = False
        if not more:
            if self.trailers:
                self.state = SENDING_TRAILERS
            elif self.length_left or self.overrun:
                cut = True  # short or over-long: the client cannot frame what follows
            else:
                end = True
        sent = await self.sink.file(fd, offset, count, more or cut)
        if self.access is not None:
            self.access.sent += sent
        if sent < count:
            # The peer went away mid-body (a file shorter than promised raised already): the
            # response cannot complete, and the app hears it as every send does (spec 2.4).
            raise ClientDisconnected("client disconnected during a file body")
        if cut:
            self.sink.fail(None)
        if cut or end:
            self._done()
        return sent
