"""The contract between the ONE ASGI HTTP stream (``stream.py``) and a protocol that carries it.

A protocol (HTTP/1.1 today, HTTP/2 next) creates one ``HTTPStream`` per request and gives it a
``ResponseSink``. The two halves split the work like this:

* the **stream** decides what ASGI allows: message order, 100-continue intent, which responses
  carry no body (HEAD, 204, 304), Content-Length accounting (a body never runs past its declared
  length), trailers/early hints/file validation, and the 500 when the app fails;
* the **sink** decides the bytes: how a head, a body chunk, a file range, trailers and 1xx
  answers are framed on its protocol, when they are written, and how an unfinished response is
  cut. It never sees an ASGI message.

Request events go the other way, pushed by the protocol into the stream as plain calls (no event
objects: the HTTP/1.1 hot path allocates nothing it does not need):

* ``stream.on_body(data)``: request body bytes, in order;
* ``stream.on_body_end()``: the request body is complete (a request without a body is created
  complete);
* ``stream.on_disconnect()``: the client is gone (connection lost, HTTP/2 RST_STREAM): ``receive``
  answers ``http.disconnect`` and ``send`` raises ``ClientDisconnected``;
* ``stream.on_eof()``: the client will send nothing more but may still read (an HTTP/1.1 half
  close): ``receive`` answers ``http.disconnect`` once the body is delivered, ``send`` still works.

Backpressure: ``body`` returns ``None`` when the bytes were taken whole (the common case, no
coroutine), or an awaitable the stream awaits before it calls the sink again (HTTP/1.1: the
transport is over its high-water mark; HTTP/2: the stream's or connection's flow-control window
is exhausted -- the sink sends what the window allows and resolves the awaitable once the rest is
out). ``file`` is always awaited. The sink is never called again after it has ended the response
(``body(..., more=False)`` without trailers, ``trailers``, or ``fail``).

Request-body flow control runs through ``consumed``: the stream reports every body byte it hands
to the app, so a protocol can resume reading (HTTP/1.1) or send WINDOW_UPDATE (HTTP/2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

Headers = Sequence[tuple[bytes, bytes]]


class ResponseHead:
    """An ``http.response.start`` after validation: shared, read-only, cached per
    ``(status, *headers)`` (apps send the same heads again and again).

    ``headers`` are the app's fields minus the framing ones a protocol owns (Content-Length
    is kept, as the app declared it; Transfer-Encoding and Connection are removed);
    ``length`` is the declared Content-Length or None; ``content`` is False for a status that
    never carries content (204, 304: ``length`` is then 0); ``close`` is True when the app sent
    ``Connection: close`` (a protocol may honour it, HTTP/2 has no such thing); ``overridden``
    names the default headers (server, date, configured extras) the app sent itself.

    ``h1`` and ``h2`` are memos a protocol writer fills with its own encoding of the head on
    first use (HTTP/1.1: the head's bytes up to its framing fields, valid for the default
    fields ``h1_block``); the stream never reads them.
    """

    __slots__ = ("close", "content", "h1", "h1_block", "h2", "headers", "length", "overridden",
                 "status")

    def __init__(self, status: int, headers: tuple, length: int | None, close: bool,
                 overridden: frozenset | None, content: bool = True) -> None:
        self.status = status
        self.headers = headers
        self.length = length
        self.content = content
        self.close = close
        self.overridden = overridden
        self.h1: bytes | None = None
        self.h1_block: bytes | None = None
        self.h2: object = None


class ResponseSink(Protocol):
    """What a protocol implements for one stream's response (see the module docstring)."""

    def informational(self, status: int, headers: Headers) -> None:
        """A 1xx answer before the response (100 Continue, 103 Early Hints), written at once.

        The stream calls it only before ``start`` and only with fields already validated; a
        protocol whose peer cannot take a 1xx (HTTP/1.0) drops it.
        """

    def start(self, head: ResponseHead, has_body: bool, trailers: bool) -> None:
        """The response head. The sink may hold it back to leave with the first body bytes.

        ``has_body`` False: the response carries no content (HEAD, 204, 304), whatever the
        head says; ``body`` will still be called (with empty data) to end it.
        ``trailers`` True: ``trailers`` ends the response, not ``body(..., more=False)``.
        """

    def body(self, data: bytes, more: bool) -> Awaitable[None] | None:
        """Body bytes, already cut to the declared length; ``more`` False ends the body.

        Returns None when taken whole, else an awaitable to await before the next call.
        """

    async def file(self, fd: int, offset: int, count: int, more: bool) -> int:
        """``count`` bytes of the open file ``fd`` from ``offset`` as body (count already cut
        to the declared length; 0 on a body-less response). Returns the bytes sent, fewer when
        the client went away."""

    def trailers(self, headers: Headers) -> None:
        """The trailer fields (validated) after the body; ends the response. A sink that
        cannot carry them (HTTP/1.0, a Content-Length body, a client that did not ask) drops
        the fields but still ends the response."""

    def fail(self, status: int | None) -> bool:
        """End the response abnormally. If nothing of it reached the client yet and
        ``status`` is given, the sink answers ``status`` itself (the server's own error
        reply) and returns True; otherwise (``status`` None: the client is gone, or a body
        cut short) it cuts the response so the client cannot take it for complete (HTTP/1.1
        closes the connection, HTTP/2 resets the stream) and returns False."""

    def consumed(self, size: int) -> None:
        """The app took ``size`` request-body bytes (0: it waits for more with nothing
        buffered): room for more (HTTP/1.1 resumes reading, HTTP/2 opens the window)."""
