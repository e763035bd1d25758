"""What ``H2Core`` reports as it reads: the interface the asyncio connection (``H2Protocol``)
implements, and the sans-IO tests' recorder too. Each call is made after the core's own state
has changed, so a handler may call back into the core (send, reset) from inside it."""

from __future__ import annotations

from typing import Protocol


class Handler(Protocol):
    def request(self, stream_id: int, headers: list, ended: bool) -> None:
        """A new stream's decoded header block (shared: read it, do not change it)."""

    def data(self, stream_id: int, data: bytes, size: int) -> None:
        """Body bytes; ``size`` counts the padding too (flow control)."""

    def end(self, stream_id: int) -> None:
        """The client's END_STREAM after body bytes or trailers."""

    def malformed(self, stream_id: int, reason: str) -> None:
        """Trailers that break RFC 9113 8.1: the stream is to be reset."""

    def reset(self, stream_id: int, code: int) -> None:
        """The stream is closed under the app: the client's RST_STREAM or our stream error."""

    def window(self, stream_id: int) -> None:
        """The client opened a window (0: the connection's, or a new initial window)."""

    def peer_goaway(self, code: int) -> None:
        """The client's GOAWAY."""

    def terminated(self, code: int, reason: str) -> None:
        """A connection error: our GOAWAY with ``code`` is queued; close after the flush."""

    def drained(self) -> None:
        """A drain's final GOAWAY is queued: close once no stream is left."""
