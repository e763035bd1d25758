"""File bodies on an HTTP/1.1 transport (the sink side of pathsend and zerocopysend).

With ``loop.sendfile`` where the loop has it (asyncio on plain TCP), with ``os.sendfile`` on the
socket once the transport's buffer is empty where it does not (uvloop), and by reads through the
transport, awaiting flow control, over TLS.
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import AppProtocolError

# ``conn`` below is the HTTP/1.1 connection (its transport, loop, flush, drain, closed): typed
# Any so this module needs no import of it (the connection imports this one).
HTTPConnection = Any

READ_CHUNK = 64 * 1024
SENDFILE_CHUNK = 1 << 20


class _FileView:
    """What ``loop.sendfile`` needs of a file: its descriptor. The stream owns the real file
    and sets its position itself, so asyncio's closing ``seek`` changes nothing."""

    __slots__ = ("fd",)
    mode = "rb"

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def seek(self, offset: int, whence: int = 0) -> int:
        return offset


async def send_file(conn: HTTPConnection, fd: int, offset: int, count: int) -> int:
    """Write ``count`` bytes of ``fd`` from ``offset``; returns the bytes sent."""
    transport = conn.transport
    loop = conn.loop
    if transport.get_extra_info("sslcontext") is None:
        conn.flush()
        try:
            return await loop.sendfile(transport, _FileView(fd), offset, count, fallback=False)
        except (NotImplementedError, RuntimeError, AttributeError):
            pass  # uvloop has no loop.sendfile: use the socket directly below
        sock = transport.get_extra_info("socket")
        if sock is not None and hasattr(os, "sendfile"):
            return await _sendfile_direct(conn, sock.fileno(), fd, offset, count)
    return await _copy(conn, fd, offset, count)


async def _sendfile_direct(conn: HTTPConnection, out_fd: int, fd: int, offset: int,
                           count: int) -> int:
    """os.sendfile on the socket while the transport holds nothing of its own.

    The transport owns the socket's fd in the loop's poller, so writability is watched on a
    duplicate of it (the same socket, another fd number) while the transport is idle.
    """
    await _wait_empty(conn)
    if conn.closed:
        return 0
    loop = conn.loop
    watch_fd = os.dup(out_fd)
    sent = 0
    try:
        while sent < count and not conn.closed:
            try:
                n = os.sendfile(watch_fd, fd, offset + sent, min(count - sent, SENDFILE_CHUNK))
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(watch_fd, writable.set_result, None)
                try:
                    await writable
                finally:
                    loop.remove_writer(watch_fd)
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if n == 0:
                raise AppProtocolError("file shorter than the bytes to send")
            sent += n
    finally:
        os.close(watch_fd)
    return sent


async def _wait_empty(conn: HTTPConnection) -> None:
    transport = conn.transport
    if transport.get_write_buffer_size() == 0:
        return
    low, high = transport.get_write_buffer_limits()
    try:
        # pause above 0 bytes and resume at 0: resume_writing means "empty"
        transport.set_write_buffer_limits(high=1, low=0)
        await conn.drain()
    finally:
        if not conn.closed:
            transport.set_write_buffer_limits(high=high, low=low)


async def _copy(conn: HTTPConnection, fd: int, offset: int, count: int) -> int:
    sent = 0
    while sent < count and not conn.closed:
        data = os.pread(fd, min(count - sent, READ_CHUNK), offset + sent)
        if not data:
            raise AppProtocolError("file shorter than the bytes to send")
        conn.write(data)
        sent += len(data)
        if conn.write_paused:
            await conn.drain()
    return sent
