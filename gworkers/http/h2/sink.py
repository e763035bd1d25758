"""One HTTP/2 stream's ``ResponseSink``: a stream's response as HEADERS and DATA frames within
the flow-control windows.

The head is held until the first body bytes, so a response without content leaves as one
HEADERS frame with END_STREAM. ``body`` sends what the stream's and the connection's windows
allow and, when bytes are left, returns an awaitable the connection resolves once a
WINDOW_UPDATE has let the rest out (the stream awaits it before its next call): a slow reader
costs at most one message plus the window. ``file`` reads the file a window at a time.
``consumed`` opens the stream's receive window as the app reads, in steps of half the window
(or at once when the app waits with nothing buffered), so an unread upload stalls this stream
only.
"""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Any

from ...errors import AppProtocolError
from ..sink import Headers, ResponseHead
from .deadlines import body_window
from .frames import ErrorCodes

# Connection-specific response fields an app may send that HTTP/2 forbids (RFC 9113 8.2.2).
_DROPPED = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                      b"upgrade"))
_STATUS = {s.value: str(s.value).encode() for s in HTTPStatus}
READ_CHUNK = 64 * 1024


def status_bytes(status: int) -> bytes:
    return _STATUS.get(status) or str(status).encode()


def h2_fields(headers: Headers) -> list[tuple[bytes, bytes]]:
    """Response fields as HTTP/2 carries them: lower-case names, no connection-specific ones."""
    return [(name.lower(), value) for name, value in headers if name.lower() not in _DROPPED]


class StreamSink:
    """The response side of one h2 stream (see the module docstring). ``conn`` is the
    ``H2Protocol`` (not imported here: it imports this module)."""

    __slots__ = ("blocked_since", "body_deadline", "body_progress", "conn", "ended", "head", "id", "length",
                 "pending", "pending_end", "received", "receiving", "sent_head", "stream", "with_trailers",
                 "unacked", "waiter", "window")

    def __init__(self, conn: Any, stream_id: int, receiving: bool) -> None:
        self.conn = conn
        self.id = stream_id
        self.stream: Any = None  # the HTTPStream, set once created
        self.head: list | None = None  # the response fields, held until the first body bytes
        self.sent_head = False
        self.with_trailers = False
        self.ended = False  # our side of the stream is closed (END_STREAM or RST_STREAM)
        self.receiving = receiving  # the request body is still arriving
        self.received = 0  # request body bytes so far (limit_request_body)
        self.length: int | None = None  # the request's content-length (RFC 9113 8.1.1)
        self.unacked = 0  # body bytes the app read that the peer's window does not yet know of
        self.window = conn.config.http2_initial_window_size
        self.pending = b""  # body bytes waiting for window
        self.pending_end = False
        self.waiter: Any = None  # resolved when ``pending`` has left
        self.blocked_since = 0.0
        self.body_progress = 0  # request body bytes in the current timeout window
        self.body_deadline = body_window(conn.config, conn.loop.time()) if receiving else 0.0

    # ------------------------------------------------------------------ ResponseSink
    def informational(self, status: int, headers: Headers) -> None:
        if self.ended:
            return
        self.conn.core.send_headers(self.id, [(b":status", status_bytes(status)),
                                              *h2_fields(headers)], False)
        self.conn.flush_soon()

    def start(self, head: ResponseHead, has_body: bool, trailers: bool) -> None:
        fields = head.h2
        if fields is None:
            fields = head.h2 = [(b":status", status_bytes(head.status)), *h2_fields(head.headers)]
        self.head = self.conn.with_defaults(fields, head.overridden)
        self.with_trailers = trailers

    def body(self, data: bytes, more: bool) -> Any:
        if self.ended:
            return None
        end = not more and not self.with_trailers
        conn = self.conn
        head = self.head
        if head is not None:
            self.head = None
            self.sent_head = True
            if not data:
                conn.core.send_headers(self.id, head, end)
                if end:
                    self._ended()
                conn.flush_soon()
                return None
            conn.core.send_headers(self.id, head, False)
        if data:
            left = conn.core.send_data(self.id, data, end)
            conn.flush_soon()
            if left is None:
                self.gone()
                return None
            if left:
                self.pending = left
                self.pending_end = end
                return self._wait_window()
        elif end:
            conn.core.send_data(self.id, b"", True)
            conn.flush_soon()
        if end:
            self._ended()
            return None
        return conn.drain() if conn.write_paused else None

    async def file(self, fd: int, offset: int, count: int, more: bool) -> int:
        if not count:
            self.body(b"", more)
            return 0
        sent = 0
        while sent < count and not self.ended:
            data = os.pread(fd, min(count - sent, READ_CHUNK), offset + sent)
            if not data:
                raise AppProtocolError("file shorter than the bytes to send")
            sent += len(data)
            waiter = self.body(data, more or sent < count)  # the last read carries the end
            if waiter is not None:
                await waiter
        return sent

    def trailers(self, headers: Headers) -> None:
        if self.ended:
            return
        if self.head is not None:
            self.body(b"", True)
        self.conn.core.send_headers(self.id, h2_fields(headers), True)
        self._ended()
        self.conn.flush_soon()

    def fail(self, status: int | None) -> bool:
        """Answer ``status`` if nothing of the response has left; otherwise reset the stream."""
        if self.ended:
            return False
        conn = self.conn
        if status is not None and not self.sent_head:
            self.head = None
            conn.answer(self.id, status)
            self._ended()
            return True
        conn.core.reset(self.id, ErrorCodes.INTERNAL_ERROR if status is not None
                        else ErrorCodes.CANCEL)
        self.gone()
        conn.flush_soon()
        return False

    def consumed(self, size: int) -> None:
        if not self.receiving:
            return
        unacked = self.unacked + size
        if unacked and (not size or unacked >= self.window // 2):
            self.unacked = 0
            self.conn.core.open_window(self.id, unacked)
            self.conn.flush_soon()
        else:
            self.unacked = unacked

    # ------------------------------------------------------------------ from the connection
    def window_opened(self) -> None:
        """The peer opened a window: send what waits for it."""
        pending = self.pending
        if not pending or self.ended:
            return
        left = self.conn.core.send_data(self.id, pending, self.pending_end)
        if left is None:
            self.gone()
            return
        self.pending = left
        if not left:
            if self.pending_end:
                self._ended()
            self._release()

    def _wait_window(self) -> Any:
        conn = self.conn
        self.waiter = conn.loop.create_future()
        self.blocked_since = conn.loop.time()
        conn.blocked[self.id] = self
        return self.waiter

    def _release(self) -> None:
        self.conn.blocked.pop(self.id, None)
        self.blocked_since = 0.0
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _ended(self) -> None:
        self.ended = True
        self.conn.response_ended(self)

    def gone(self) -> None:
        """The stream is closed under us (reset by the peer, or by us): stop sending."""
        self.pending = b""
        if not self.ended:
            self.ended = True
            self.conn.response_ended(self)
        self._release()
