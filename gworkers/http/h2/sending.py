"""The writing half of the HTTP/2 connection: response HEADERS and DATA within the peer's
flow-control windows and frame size, WINDOW_UPDATE as the app reads, RST_STREAM, GOAWAY.

``Sending`` is the base class of ``H2Core`` (core.py, the reading half); both work on the one
set of streams. Frames go into ``out`` in the order they are made and leave together with
``data_to_send`` (once per loop pass: the connection gathers every stream's output into one
write). A DATA payload is not copied into a frame: its 9-byte header and the app's bytes are
joined once, on the way out.
"""

from __future__ import annotations

from typing import Any

from .frames import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PING,
    ErrorCodes,
    frame,
    frame_head,
    goaway,
    rst_stream,
    window_update,
)
from .streams import (
    CLOSED,
    CLOSED_BY_END,
    HALF_CLOSED_LOCAL,
    HALF_CLOSED_REMOTE,
    RESET_BY_US,
    Stream,
)

_E = ErrorCodes
MAX_STREAM_ID = 2**31 - 1
DRAIN_PING = b"draining"  # the opaque data of a drain's PING (8 bytes)


class Sending:
    """The send side of ``H2Core`` (which declares every attribute used here)."""

    __slots__ = ()
    closed: bool
    draining: bool
    drain_ticks: int
    out: list
    tail: bytes
    send_window: int
    streams: dict[int, Stream]
    closed_streams: Any
    encoder: Any
    peer: Any
    budget: Any
    handler: Any
    last_stream: int

    # ------------------------------------------------------------------ send
    def data_to_send(self) -> bytes:
        out = self.out
        data = b"".join(out) if out else b""
        out.clear()
        if self.tail:
            data, self.tail = data + self.tail, b""
        return data

    def send_headers(self, stream_id: int, headers: list, end: bool) -> bool:
        """False when the stream is closed on our side (the peer reset it)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.state is HALF_CLOSED_LOCAL:
            return False
        block = self.encoder.encode(headers)
        size = len(block)
        limit = self.peer.max_frame
        flags = END_STREAM if end else 0
        if size <= limit:
            self.out.append(frame(HEADERS, flags | END_HEADERS, stream_id, block))
        else:  # a block larger than a frame: HEADERS, then CONTINUATION frames
            self.out.append(frame(HEADERS, flags, stream_id, block[:limit]))
            for pos in range(limit, size, limit):
                last = END_HEADERS if pos + limit >= size else 0
                self.out.append(frame(CONTINUATION, last, stream_id, block[pos:pos + limit]))
        if end:
            self._local_end(stream_id, stream)
        return True

    def send_data(self, stream_id: int, data: bytes, end: bool) -> bytes | None:
        """Send what the flow-control windows allow, in frames the peer accepts.

        Returns the bytes left over (b"" when all left; ``end`` is then on the last frame), or
        None when the stream is closed.
        """
        stream = self.streams.get(stream_id)
        if stream is None or stream.state is HALF_CLOSED_LOCAL:
            return None
        out = self.out
        size = len(data)
        window = min(stream.send_window, self.send_window, self.peer.max_frame)
        if size <= window or not size:  # the common case: one frame (an empty one is not
            # flow controlled)
            out.append(frame_head(DATA, END_STREAM if end else 0, stream_id, size))
            if size:
                out.append(data)
            stream.send_window -= size
            self.send_window -= size
            self.budget.data_sent(1)
            if end:
                self._local_end(stream_id, stream)
            return b""
        view = memoryview(data)  # (frames are cut from it without copying)
        pos = frames = 0
        while window > 0:
            n = min(window, size - pos)
            last = pos + n == size
            out.append(frame_head(DATA, END_STREAM if end and last else 0, stream_id, n))
            out.append(view[pos:pos + n])
            stream.send_window -= n
            self.send_window -= n
            pos += n
            frames += 1
            if last:
                break
            window = min(stream.send_window, self.send_window, self.peer.max_frame)
        self.budget.data_sent(frames)
        if pos == size:
            if end:
                self._local_end(stream_id, stream)
            return b""
        return bytes(view[pos:])

    def _local_end(self, stream_id: int, stream: Stream) -> None:
        """Our END_STREAM: half-closed (local), or closed if the client's came first."""
        if stream.state is HALF_CLOSED_REMOTE:
            stream.state = CLOSED
            del self.streams[stream_id]
            self.closed_streams.add(stream_id, CLOSED_BY_END)
        else:
            stream.state = HALF_CLOSED_LOCAL

    def window_for(self, stream_id: int) -> int:
        """Bytes the peer lets us send on this stream now (0 if closed)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.state is HALF_CLOSED_LOCAL:
            return 0
        return max(0, min(stream.send_window, self.send_window, self.peer.max_frame))

    def open_window(self, stream_id: int, size: int) -> None:
        """The app read ``size`` bytes of this stream's body: the peer may send that much more."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.state is not HALF_CLOSED_REMOTE and size > 0:
            stream.recv_window += size
            self.out.append(window_update(stream_id, size))

    def reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM from us (nothing when the stream is closed already)."""
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.state = CLOSED
            self.out.append(rst_stream(stream_id, code))
            self.closed_streams.add(stream_id, RESET_BY_US)

    def receive_window(self, stream_id: int) -> int:
        """Bytes the peer may still send on this stream before we open its window (0 if
        closed)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.state is HALF_CLOSED_REMOTE:
            return 0
        return stream.recv_window

    def stream_open(self, stream_id: int) -> bool:
        """Whether the stream is still open in some direction."""
        return stream_id in self.streams

    # ------------------------------------------------------------------ ending
    def drain(self) -> None:
        """A graceful close in two steps (RFC 9113 6.8). First a GOAWAY with the largest
        stream id and a PING: the client opens no more streams, and those it opened before it
        read the GOAWAY are still taken. The PING's ACK comes after all of them, so then (or
        at the second ``drain_tick`` without it) the final GOAWAY names the last stream taken,
        and a stream after it is refused (REFUSED_STREAM: the client may retry it). No stream
        in flight is refused, as a single GOAWAY would."""
        if self.draining or self.closed or self.drain_ticks >= 0:
            return
        self.drain_ticks = 0
        self.out.append(goaway(MAX_STREAM_ID, _E.NO_ERROR) + frame(PING, 0, 0, DRAIN_PING))

    def drain_tick(self) -> None:
        """Once a second while draining: no PING ACK by the second tick, the final GOAWAY."""
        if self.drain_ticks >= 0 and not self.draining:
            self.drain_ticks += 1
            if self.drain_ticks >= 2:
                self.final_goaway()

    def final_goaway(self) -> None:
        """GOAWAY NO_ERROR naming the last stream we will answer (a drain's second step, or
        its only one where nothing can be in flight); the handler hears ``drained``."""
        if self.draining or self.closed:
            return
        self.draining = True
        self.out.append(goaway(self.last_stream, _E.NO_ERROR))
        self.handler.drained()

    def goodbye(self) -> None:
        """The last GOAWAY of a quick exit (after the final one, if sent): NO_ERROR, the
        same last stream id (it may not grow, RFC 9113 6.8); it leaves after the resets
        queued with it, and nothing is read after it."""
        if self.closed:
            return
        self.closed = True
        self.tail = goaway(self.last_stream, _E.NO_ERROR)

    def terminate(self, code: int, reason: str) -> None:
        """End the connection now: GOAWAY with ``code``; the handler closes after the flush."""
        if self.closed:
            return
        self.closed = True
        self.streams.clear()
        self.out.append(goaway(self.last_stream, code))
        self.handler.terminated(code, reason)
