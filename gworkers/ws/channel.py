"""What a WebSocket session runs over: a byte channel, and the handshake's responder.

The session (``session.py``) speaks WebSocket frames and ASGI; it never writes HTTP. Whatever
carried the opening request gives it two things:

* a **byte channel**, ``ByteChannel``: where frames are written and from where they arrive.
  HTTP/1.1 after an upgrade: the connection's asyncio transport itself (no wrapper, nothing
  added per message). HTTP/2 (RFC 8441): one stream's DATA frames.
* a **handshake responder**, ``HandshakeResponder``: how this protocol answers the opening
  request. HTTP/1.1: ``101 Switching Protocols`` with ``Sec-WebSocket-Accept``, or an HTTP/1.1
  error/denial response and a close. HTTP/2: ``:status 200`` on the stream, or a normal response
  on it.

In the other direction, the channel's owner drives the session through the ``asyncio.Protocol``
calls it already implements: ``data_received(bytes)``, ``eof_received()``,
``connection_lost(exc)`` (the channel is gone: for HTTP/2, the stream was reset or closed, or the
connection lost) and ``pause_writing()``/``resume_writing()`` (write backpressure: HTTP/2, the
flow-control window). It also calls ``check_timeouts(now)`` once a second (pings, close
deadlines) and ``shutdown()`` when the worker drains (close 1012). HTTP/1.1 gets all of this for
free: the session becomes the transport's protocol and is registered as a connection of its own.
"""

from __future__ import annotations

from typing import Any, Protocol

from .handshake import Handshake


class ByteChannel(Protocol):
    """The bytes a session writes and reads (an ``asyncio.Transport`` is one)."""

    def write(self, data: bytes) -> None:
        """Send WebSocket frame bytes, in order."""

    def pause_reading(self) -> None:
        """Stop delivering ``data_received`` (the app is behind: ``ws_max_queue``)."""

    def resume_reading(self) -> None:
        """Deliver again."""

    def close(self) -> None:
        """Close after the pending writes (HTTP/2: END_STREAM); ``connection_lost`` follows."""

    def abort(self) -> None:
        """Close now, dropping pending writes (HTTP/2: RST_STREAM); ``connection_lost`` follows."""

    def is_closing(self) -> bool:
        """Closed or closing."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Peer information (``peername``, ``sockname``, ``sslcontext`` ...), as asyncio's."""


class HandshakeResponder(Protocol):
    """How one protocol answers a WebSocket opening request (see the module docstring).

    Each call writes at once; after ``refuse`` or a final ``deny_body`` the session closes the
    channel. The session calls none of them once its channel is closing.
    """

    def check(self, scope: dict) -> Handshake:
        """Apply this protocol's rules for an opening request and the shared ones
        (``handshake.read_handshake``); raise ``ProtocolError`` (400, 426) to refuse."""

    def accept(self, handshake: Handshake, fields: list) -> None:
        """Accept: HTTP/1.1 ``101`` (Upgrade, Connection, Sec-WebSocket-Accept) or HTTP/2
        ``:status 200``, with ``fields`` (already checked: extension, subprotocol, the app's)."""

    def refuse(self, status: int, message: str = "", fields: Any = ()) -> None:
        """The server's own refusal (400/403/426/500/503): a complete small response."""

    def deny_start(self, status: int, headers: Any) -> None:
        """The app's denial response (``websocket.http.response.start``), headers checked."""

    def deny_body(self, body: bytes, more: bool) -> None:
        """Its body; ``more`` False ends it."""
