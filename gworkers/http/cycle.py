"""The ONE ASGI HTTP request/response cycle, shared by both parser adapters.

A cycle owns the ``receive``/``send`` pair of one request: body delivery (with 100-continue sent
only when the app first waits for the body), response framing (Content-Length or chunked,
nothing on HEAD/1xx/204/304), Content-Length accounting, and the disconnect signal. It writes
through its connection, which owns the transport; the cycle never closes anything itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import AppProtocolError, ClientDisconnected
from ..flow import wake
from . import wire

if TYPE_CHECKING:
    from .connection import HTTPConnection

_NO_BODY_STATUS = frozenset((204, 304))
_CHUNKED = b"transfer-encoding: chunked\r\n"
_CLOSE_END = b"connection: close\r\n\r\n"
_KEEP_ALIVE_END = b"connection: keep-alive\r\n\r\n"
# A head shorter than this is joined with the first body chunk so both leave in one write;
# longer bodies are written beside it without copying.
_COALESCE = 16384


class RequestCycle:
    __slots__ = (
        "body",
        "body_complete",
        "body_size",
        "delivered",
        "chunked",
        "conn",
        "disconnected",
        "expect_continue",
        "head",
        "head_request",
        "keep_alive",
        "length_left",
        "response_complete",
        "scope",
        "status",
        "waiter",
        "access",
        "trailers",
        "__weakref__",
    )

    def __init__(
        self,
        conn: HTTPConnection,
        scope: dict,
        keep_alive: bool,
        expect_continue: bool,
        body_complete: bool,
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.body_complete = body_complete
        self.body: list[bytes] = []
        self.body_size = 0  # bytes in ``body``: reading pauses past BODY_HIGH_WATER
        self.delivered = False
        self.waiter = None  # future the app's receive() waits on
        self.disconnected = False
        self.head: bytes | None = None  # response head held until the first body message
        self.status = 0
        self.head_request = scope["method"] == "HEAD"
        self.chunked = False
        self.length_left: int | None = None
        self.response_complete = False
        self.access = None  # (status, bytes sent) bookkeeping, only when someone logs it
        self.trailers = False

    # ------------------------------------------------------------------ fed by the connection
    def feed_body(self, data: bytes) -> None:
        self.body.append(data)
        self.body_size += len(data)
        if self.waiter is not None:
            self._wake()

    def feed_complete(self) -> None:
        self.body_complete = True
        if self.waiter is not None:
            self._wake()

    def feed_disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        wake(waiter)


    # ------------------------------------------------------------------ ASGI receive
    async def receive(self) -> dict[str, Any]:
        while True:
            if self.disconnected or self.response_complete:
                return {"type": "http.disconnect"}
            if self.delivered and self.conn.eof:
                # the peer half-closed after its request: once told, the client is gone
                self.disconnected = True
                return {"type": "http.disconnect"}
            if not self.delivered:
                body = self.body
                if body or self.body_complete:
                    data = body[0] if len(body) == 1 else b"".join(body)
                    if body:
                        self.body = []
                        self.body_size = 0
                        if self.conn.read_paused:
                            self.conn.body_consumed()
                    if self.body_complete:
                        self.delivered = True
                        return {"type": "http.request", "body": data, "more_body": False}
                    return {"type": "http.request", "body": data, "more_body": True}
                if self.expect_continue:
                    self.expect_continue = False
                    if self.status == 0:
                        self.conn.write(wire.CONTINUE)
                self.conn.want_body()
            # wait for body, the end of the response, or the client going away
            self.waiter = self.conn.loop.create_future()
            await self.waiter

    # ------------------------------------------------------------------ ASGI send
    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if self.head is None:
                raise AppProtocolError(
                    "http.response.body sent before http.response.start"
                    if not self.response_complete
                    else "http.response.body sent after the response completed"
                )
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            self._write_body(body, more)
            if more and self.conn.write_paused:
                await self.conn.drain()
        elif kind == "http.response.start":
            if self.status:
                raise AppProtocolError("http.response.start sent twice")
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            self._start(message)
        elif kind == "http.response.trailers":
            self._send_trailers(message)
        else:
            await self.conn.send_extension(self, message)

    def _start(self, message: dict[str, Any]) -> None:
        status = message["status"]
        headers = message.get("headers", ())
        if type(headers) is not list and type(headers) is not tuple:
            headers = list(headers)  # any iterable, read once
        conn = self.conn
        defaults = conn.defaults
        try:
            info = defaults.heads.get((status, *headers)) if type(status) is int else None
        except TypeError:  # unhashable headers (list pairs): classified every time
            info = None
        if info is None:
            info = wire.response_head(status, headers, defaults)
        line, lines, length, chunked, app_close, overridden = info
        keep_alive = self.keep_alive and not app_close
        http10 = self.scope["http_version"] == "1.0"
        if self.head_request and length != 0:
            # a HEAD answer keeps the GET's Content-Length, if any, and carries no body
            chunked = False
            length = 0
        elif chunked and http10:
            # HTTP/1.0 has no chunked coding: the body ends when the connection does
            chunked = False
            keep_alive = False
        # trailers can only follow a chunked body; otherwise they are dropped (RFC 9110 6.5.1)
        self.trailers = bool(message.get("trailers", False))
        if not conn.accepting:
            keep_alive = False
        if not keep_alive:
            tail = _CLOSE_END
        elif http10:
            tail = _KEEP_ALIVE_END
        else:
            tail = b"\r\n"
        if chunked:
            tail = _CHUNKED + tail
        self.keep_alive = keep_alive
        self.chunked = chunked
        self.length_left = length
        self.status = status
        if self.access is not None:
            self.access.response(status, headers)
        block = defaults.block if overridden is None else defaults.without(overridden)
        self.head = line + block + lines + tail
        if self.expect_continue:
            # the app answered without reading: the client may still be waiting to send
            self.expect_continue = False
            if not self.body_complete:
                self.keep_alive = False
                if keep_alive:
                    self.head = self.head[:-2] + b"connection: close\r\n\r\n"

    def _write_body(self, body: bytes, more: bool) -> None:
        if self.response_complete:
            raise AppProtocolError("http.response.body sent after the response completed")
        head = self.head
        n = len(body)
        if n and n == self.length_left:
            # the common case: the whole declared body in one message (not chunked, not HEAD,
            # not 204/304: those have no length left), leaving with its head in one write
            self.length_left = 0
            self.head = b""
            if self.access is not None:
                self.access.sent += n
            if head and n < _COALESCE:
                if more:
                    self.conn.write(head + body)
                else:
                    self.conn.write_last(head + body)
            else:
                self._flush(head, body)
            if not more:
                self.response_complete = True
                self.conn.response_done(self)
            return
        out = None
        if self.chunked:
            if n:
                out = wire.chunk(body) if n < _COALESCE else (b"%x\r\n" % n, body, b"\r\n")
            if not more and not self.trailers:
                out = (out + wire.LAST_CHUNK if type(out) is bytes else
                       (wire.LAST_CHUNK if out is None else out + (wire.LAST_CHUNK,)))
        elif self.length_left is None:
            out = body or None  # HTTP/1.0, no length: delimited by close
        else:
            left = self.length_left
            if n > left:
                # never write past the declared length: the message would be malformed
                if left and not (self.head_request or self.status in _NO_BODY_STATUS):
                    self._flush(head, body[:left])
                    self.length_left = 0
                self.head = b""
                if self.head_request or self.status in _NO_BODY_STATUS:
                    n = 0
                else:
                    self.keep_alive = False
                    raise AppProtocolError("response body longer than its Content-Length")
            if n:
                out = body
                self.length_left = left - n
        if self.access is not None:
            self.access.sent += n
        self._flush(head, out)
        self.head = b""
        if not more and not (self.trailers and self.chunked):
            if self.length_left:
                # short body: the peer cannot frame what follows, so the connection must close
                self.keep_alive = False
            self.response_complete = True
            self.conn.response_done(self)

    def _flush(self, head: bytes | None, out: Any) -> None:
        conn = self.conn
        if out is None:
            if head:
                conn.write(head)
        elif type(out) is bytes:
            if head:
                if len(out) < _COALESCE:
                    conn.write(head + out)
                else:
                    conn.write_parts((head, out))
            else:
                conn.write(out)
        else:
            conn.write_parts((head, *out) if head else out)

    def _send_trailers(self, message: dict[str, Any]) -> None:
        if not self.trailers:
            raise AppProtocolError("http.response.trailers without trailers: True in start")
        if self.head is None or self.head:
            raise AppProtocolError("http.response.trailers before the body")
        headers = message.get("headers", ())
        for name, value in headers:
            wire.check_header(name, value)
        if message.get("more_trailers", False):
            raise AppProtocolError("more_trailers is not supported on HTTP/1.1")
        self.trailers = False
        if not self.chunked:
            return  # no chunked body to carry them (HTTP/1.0, Content-Length): dropped
        # only a client that sent TE: trailers is sure to accept them (RFC 9110 6.5.1)
        send = "http.response.trailers" in self.scope["extensions"]
        parts = [b"0\r\n"]
        if send:
            parts += [b"%b: %b\r\n" % (name, value) for name, value in headers]
        parts.append(b"\r\n")
        self.response_complete = True
        self.conn.write(b"".join(parts))
        self.conn.response_done(self)
