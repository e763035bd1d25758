"""What the connection knows of a stream: its flow-control windows and which ways it is open
(RFC 9113 5.1), and, for a while after it closed, how it closed.

A stream is in ``H2Core.streams`` from its HEADERS until it is closed both ways or reset;
"open" and the two "half-closed" states are the two flags. Idle streams (above the highest id
opened) and closed ones are not held.
"""

from __future__ import annotations

# how a stream closed, for the frames that may still arrive on it (RFC 9113 5.1 "closed")
CLOSED = 0  # by END_STREAM both ways, or by the client's RST_STREAM: DATA or HEADERS is an error
RESET_BY_US = 1  # frames in flight when our RST_STREAM left are ignored
REMEMBERED = 512


class Stream:
    __slots__ = ("local_open", "recv_window", "remote_open", "send_window")

    def __init__(self, send_window: int, recv_window: int, remote_open: bool) -> None:
        self.send_window = send_window  # what the client lets us send
        self.recv_window = recv_window  # what the client may still send before we open more
        self.remote_open = remote_open  # the client may send DATA (no END_STREAM yet)
        self.local_open = True  # we have not sent END_STREAM


class ClosedStreams(dict):
    """stream id -> how it closed, for the last ``REMEMBERED`` streams closed."""

    __slots__ = ()

    def add(self, stream_id: int, how: int) -> None:
        self[stream_id] = how
        if len(self) > REMEMBERED:
            del self[next(iter(self))]
