"""What the connection knows of a stream: its state (RFC 9113 5.1) and flow-control windows,
and, for a while after it closed, how it closed.

A stream is in ``H2Core.streams`` from its HEADERS until it is closed both ways or reset; idle
streams (above the highest id opened) and closed ones are not held.
"""

from __future__ import annotations

from enum import Enum


class StreamState(Enum):
    """RFC 9113 5.1, seen from the server (no push: never reserved)."""

    OPEN = "open"
    HALF_CLOSED_LOCAL = "half-closed (local)"  # we sent END_STREAM; the client may still send
    HALF_CLOSED_REMOTE = "half-closed (remote)"  # the client sent END_STREAM; we may still send
    CLOSED = "closed"  # both ways, or reset: no longer held


OPEN, HALF_CLOSED_LOCAL, HALF_CLOSED_REMOTE, CLOSED = StreamState

# how a stream closed, for the frames that may still arrive on it (RFC 9113 5.1 "closed")
CLOSED_BY_END = 0  # END_STREAM both ways, or the client's RST_STREAM: DATA or HEADERS is an error
RESET_BY_US = 1  # frames in flight when our RST_STREAM left are ignored
REMEMBERED = 512


class Stream:
    __slots__ = ("recv_window", "send_window", "state")

    def __init__(self, send_window: int, recv_window: int, state: StreamState) -> None:
        self.state = state
        self.send_window = send_window  # what the client lets us send
        self.recv_window = recv_window  # what the client may still send before we open more


class HeaderBlock:
    """A header block under way: HEADERS without END_HEADERS, until its last CONTINUATION."""

    __slots__ = ("end_stream", "parts", "self_dependent", "size", "stream_id")

    def __init__(self, stream_id: int, end_stream: int, first: bytes,
                 self_dependent: bool) -> None:
        self.stream_id = stream_id
        self.end_stream = end_stream  # the HEADERS frame's END_STREAM flag
        self.self_dependent = self_dependent  # its priority names the stream itself
        self.parts = [first]
        self.size = len(first)  # (kept as it grows: capped while it arrives)


class ClosedStreams(dict):
    """stream id -> how it closed, for the last ``REMEMBERED`` streams closed."""

    __slots__ = ()

    def add(self, stream_id: int, how: int) -> None:
        self[stream_id] = how
        if len(self) > REMEMBERED:
            del self[next(iter(self))]
