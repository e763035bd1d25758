"""The HTTP/1.1 response sink: how a stream's response becomes bytes on the connection.

``ResponseWriter`` is the half of ``HTTPConnection`` that implements ``ResponseSink`` for the
request being answered (HTTP/1.1 answers one request at a time, so the framing state of the
current response lives on the connection): the status line and header block, Content-Length or
chunked framing (none on HEAD/204/304, none on HTTP/1.0, which ends a body by closing),
``Connection: close`` when this response is the last, trailers on a chunked body, 1xx answers,
file bodies, and the deferred writes that let a pipelined burst leave in one ``writelines``.
"""

from __future__ import annotations

from typing import Any

from ..sink import Headers, ResponseHead
from ..stream import AWAITING_START
from . import wire
from .files import send_file

_CHUNKED = b"transfer-encoding: chunked\r\n"
_CLOSE_END = b"connection: close\r\n\r\n"
_KEEP_ALIVE_END = b"connection: keep-alive\r\n\r\n"
# A head shorter than this is joined with the first body chunk so both leave in one write;
# longer bodies are written beside it without copying.
_COALESCE = 16384
# Pending response bytes past which the deferred write is flushed at once.
OUT_HIGH_WATER = 64 * 1024


class ResponseWriter:
    """The sink methods and the connection's output buffer (a mixin of ``HTTPConnection``,
    whose slots hold the attributes used here)."""

    __slots__ = ()

    # (declared by HTTPConnection)
    cycle: Any
    held: bytes
    keep_alive: bool
    out: list | None
    out_size: int
    out_chunked: bool
    out_trailers: bool

    # ------------------------------------------------------------------ ResponseSink
    def informational(self, status: int, headers: Headers) -> None:
        if self.cycle.scope["http_version"] == "1.1":  # HTTP/1.0 clients know no 1xx
            self.write(wire.informational(status, headers))

    def start(self, head: ResponseHead, has_body: bool, trailers: bool) -> None:
        defaults = self.defaults
        fields = head.h1
        if fields is None or head.h1_block is not defaults.block:
            # The status line, the default fields (less those the app sent itself) and the app's
            # fields, joined once per cached head and Date (a new block each second), not on
            # every response: ~1,000 instructions less per response (plaintext benchmark).
            block = head.h1_block = defaults.block
            if head.overridden is not None:
                block = defaults.without(head.overridden)
            fields = head.h1 = wire.status_line(head.status) + block + wire.field_lines(head.headers)
        stream = self.cycle
        # the connection stays open unless draining, the app asked, or this is the last request
        # read and it allowed no other (a request parsed after it means it did)
        keep_alive = self.accepting and not head.close
        if keep_alive and not self.more_requests and not self.pipeline:
            keep_alive = False
        http10 = stream.scope["http_version"] == "1.0"
        chunked = has_body and head.length is None
        if chunked and http10:
            # HTTP/1.0 has no chunked coding: the body ends when the connection does
            chunked = False
            keep_alive = False
        if stream.continue_owed and not stream.body_complete:
            # the app answered without reading: the client may still be waiting to send
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
        self.out_chunked = chunked
        self.out_trailers = trailers
        self.held = fields + tail

    def body(self, data: bytes, more: bool) -> Any:
        held = self.held
        if held:
            self.held = b""
        if not self.out_chunked:
            if held:
                if len(data) < _COALESCE:
                    if more:
                        self.write(held + data)
                    else:
                        self.write_last(held + data)
                else:
                    self.write_parts((held, data))
            elif data:
                self.write(data)
        else:
            n = len(data)
            if n:
                out = wire.chunk(data) if n < _COALESCE else (b"%x\r\n" % n, data, b"\r\n")
            else:
                out = None
            if not more and not self.out_trailers:
                out = (out + wire.LAST_CHUNK if type(out) is bytes else
                       (wire.LAST_CHUNK if out is None else out + (wire.LAST_CHUNK,)))
            if out is None:
                if held:
                    self.write(held)
            elif type(out) is bytes:
                if held and len(out) < _COALESCE:
                    self.write(held + out)
                elif held:
                    self.write_parts((held, out))
                else:
                    self.write(out)
            else:
                self.write_parts((held, *out) if held else out)
        if more:
            return self.drain() if self.write_paused else None
        if not self.out_trailers:
            self.response_ended()
        return None

    async def file(self, fd: int, offset: int, count: int, more: bool) -> int:
        chunked = self.out_chunked and count
        prefix = b"%x\r\n" % count if chunked else b""
        held = self.held
        self.held = b""
        if held or prefix:
            self.write(held + prefix)
        sent = 0
        if count:
            try:
                sent = await send_file(self, fd, offset, count)
            except ConnectionError:  # reset or broken pipe from sendfile (asyncio's loop.sendfile)
                sent = -1
            if sent < count:
                # the peer went away mid-body: the stream tells the app (it sees sent < count)
                self.cycle.on_disconnect()
                self.close()
                return max(sent, 0)
        suffix = b"\r\n" if chunked else b""
        if self.out_chunked and not more and not self.out_trailers:
            suffix += wire.LAST_CHUNK
        if suffix:
            self.write(suffix)
        if not more:
            if not self.out_trailers:
                self.response_ended()
        elif self.write_paused:
            await self.drain()
        return sent

    def trailers(self, headers: Headers) -> None:
        if self.out_chunked:
            # only a client that sent TE: trailers is sure to accept them (RFC 9110 6.5.1)
            sent = "http.response.trailers" in self.cycle.scope["extensions"]
            self.write(b"0\r\n" + (wire.field_lines(headers) if sent else b"") + b"\r\n")
        # else no chunked body to carry them (HTTP/1.0, Content-Length): dropped
        self.response_ended()

    def fail(self, status: int | None) -> bool:
        """500 if nothing of the response is on the wire yet (its head is held until the
        body), else close: a half-sent response cannot be mended."""
        answered = False
        if not self.closed:
            if status is not None and (self.cycle.state is AWAITING_START or self.held):
                self.write(wire.error_reply(status, block=self.defaults.block))
                answered = True
            self.keep_alive = False
            self.pipeline.clear()
            self.close()
        return answered

    # ------------------------------------------------------------------ the output buffer
    async def drain(self) -> None:
        if self.out:
            self.flush()
        await self.wait_writable()

    def write(self, data: bytes) -> None:
        out = self.out
        if out is None:
            if self.closed:
                return
            self.out = [data]
            self.out_size = len(data)
            self.flusher.add(self)
        else:
            out.append(data)
            self.out_size += len(data)
        if self.out_size > OUT_HIGH_WATER:
            self.flush_over()

    def write_last(self, data: bytes) -> None:
        """The last bytes of a response: written at once when nothing else is pending or may
        follow in this loop pass (no pipelined request queued, none being parsed), so the
        common keep-alive request skips the flusher. Otherwise deferred like any write, and a
        pipelined burst still leaves in one write."""
        out = self.out
        if out is None:
            if not self.pipeline and not self.parsing and not self.closed:
                self.transport.write(data)
            else:
                self.write(data)
        else:
            out.append(data)
            self.out_size += len(data)
            if self.out_size > OUT_HIGH_WATER:
                self.flush_over()

    def write_parts(self, parts: Any) -> None:
        """Several buffers of one message (a chunk's size line, data, CRLF) without copying.

        A large message with nothing pending goes out in one ``writelines`` at once; anything
        else joins the pending list in one step.
        """
        size = sum(map(len, parts))
        out = self.out
        if out is None:
            if self.closed:
                return
            if size > OUT_HIGH_WATER:
                self.transport.writelines(parts)
                if self.transport.is_closing():
                    self.lost_while_writing()
                return
            self.out = list(parts)
            self.out_size = size
            self.flusher.add(self)
        else:
            out.extend(parts)
            self.out_size += size
            if self.out_size > OUT_HIGH_WATER:
                self.flush_over()

    def flush(self) -> None:
        out = self.out
        if out is not None:
            self.out = None
            if not self.closed:
                if len(out) == 1:
                    self.transport.write(out[0])
                else:
                    self.transport.writelines(out)
        if self.closing and not self.closed:
            self.closed = True
            self.transport.close()

    def flush_over(self) -> None:
        """Past OUT_HIGH_WATER within one loop pass: write now, and notice a transport that
        failed under us (see ``lost_while_writing``)."""
        self.flush()
        if not self.closed and self.transport.is_closing():
            self.lost_while_writing()

    def lost_while_writing(self) -> None:
        """The transport failed on a write (the peer reset): ``connection_lost`` only comes on
        a later loop pass, which an app sending without awaiting anything never reaches. Its
        next send must fail now, as after ``connection_lost``, instead of writing into the void
        for as long as it has data."""
        if self.closed or self.closing:
            return
        self.closed = True
        self.out = None
        for stream in (self.cycle, self.reading, *self.pipeline):
            if stream is not None:
                stream.on_disconnect()
        self.release_drain()

    def close(self) -> None:
        """Close once the pending writes are flushed."""
        if self.closed or self.closing:
            return
        self.closing = True
        if self.out is None:
            self.closed = True
            self.transport.close()
