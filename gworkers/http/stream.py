"""The ONE ASGI HTTP request/response stream, whatever protocol carries it.

One ``HTTPStream`` per request: the ``receive``/``send`` pair the app is called with, and the
``run`` coroutine a protocol starts as the request's Task. It owns ASGI message order as an
explicit ``State``, 100-continue intent (asked for only when the app first waits for the body),
body suppression for HEAD/204/304, Content-Length accounting, the 500 when the app fails, and the
ASGI side of every extension (pathsend, zerocopysend, trailers, early hints). It knows no framing
and imports no connection, server or parser: it talks to its protocol through a
``ResponseSink`` (``sink.py``), and the protocol pushes request events in with ``on_body``,
``on_body_end``, ``on_disconnect`` and ``on_eof``.

Skeleton (the surface an HTTP/2 protocol codes against); the body arrives with the next step.
"""

from __future__ import annotations

import enum
from typing import Any

from .sink import ResponseSink


class State(enum.IntEnum):
    """Where the response is in ASGI's message order."""

    AWAITING_START = 0  # nothing sent; early hints allowed
    SENDING_BODY = 1  # http.response.start seen; body / pathsend / zerocopysend
    SENDING_TRAILERS = 2  # the body ended and trailers were announced
    DONE = 3  # the response is complete (or was failed): every further send is an error


class HTTPStream:
    """One request's ASGI cycle over a ``ResponseSink``.

    ``scope`` is the finished HTTP scope (the protocol built it); ``body_complete`` False when
    a request body is still to come (pushed with ``on_body``/``on_body_end``);
    ``expect_continue`` True when the client waits for ``100 Continue`` before sending it.
    ``context`` is the worker's read-only context (log, access bridge, counters).
    """

    def __init__(self, sink: ResponseSink, scope: dict, context: Any, body_complete: bool,
                 expect_continue: bool) -> None:
        raise NotImplementedError

    # pushed by the protocol
    def on_body(self, data: bytes) -> None:
        """Request body bytes, in order."""

    def on_body_end(self) -> None:
        """The request body is complete."""

    def on_disconnect(self) -> None:
        """The client is gone: receive() answers http.disconnect, send() raises."""

    def on_eof(self) -> None:
        """The client sends nothing more but may still read: after the body, disconnect."""

    # the app's side
    async def receive(self) -> dict[str, Any]:
        """ASGI receive: http.request messages, then http.disconnect."""
        raise NotImplementedError

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI send, checked against ``State`` and handed to the sink."""
        raise NotImplementedError

    async def run(self, app: Any) -> None:
        """Call the app; a failure before the response is on the wire is answered 500."""
        raise NotImplementedError
