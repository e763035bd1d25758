"""ASGI HTTP extensions: pathsend, zerocopysend, early hints, and the TLS scope extension.

Trailers live in the cycle itself (they are part of chunked framing). Everything here runs only
when an app sends one of these messages; the scope's ``extensions`` dict is built once per
connection.

File bodies go out with ``loop.sendfile`` where the loop has it (asyncio on plain TCP), with
``os.sendfile`` on the socket once the transport's buffer is empty where it does not (uvloop),
and by chunked reads through the transport, awaiting flow control, over TLS.
"""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING, Any

from ..errors import AppProtocolError, ClientDisconnected
from . import wire

if TYPE_CHECKING:
    from .connection import HTTPConnection
    from .cycle import RequestCycle

READ_CHUNK = 64 * 1024
SENDFILE_CHUNK = 1 << 20

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_cipher_ids: dict[str, int] = {}


def _cipher_id(context: ssl.SSLContext | None, name: str | None) -> int | None:
    if name is None:
        return None
    if not _cipher_ids and context is not None:
        for cipher in context.get_ciphers():
            _cipher_ids[cipher["name"]] = cipher["id"] & 0xFFFF
    return _cipher_ids.get(name)


def _rfc4514(subject: Any) -> str | None:
    """``getpeercert()['subject']`` as an RFC 4514 string (most specific RDN first)."""
    if not subject:
        return None
    names = {
        "commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
        "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
        "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
        "emailAddress": "emailAddress",
    }
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for key, value in rdn:
            escaped = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
            if escaped[:1] in ("#", " "):
                escaped = "\\" + escaped
            parts.append(f"{names.get(key, key)}={escaped}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def tls_info(transport: Any, server_cert: str | None) -> dict | None:
    """The ASGI TLS extension for a TLS transport; None for a plain one."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    name = _rfc4514(ssl_object.getpeercert().get("subject")) if der else None
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version()),
        "cipher_suite": _cipher_id(ssl_object.context, cipher[0] if cipher else None),
    }


def connection_extensions(transport: Any, server_cert: str | None) -> dict:
    extensions: dict[str, Any] = {
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
        "http.response.early_hint": {},
    }
    info = tls_info(transport, server_cert)
    if info is not None:
        extensions["tls"] = info
    return extensions


def with_trailers(extensions: dict) -> dict:
    """The scope's extensions plus ``http.response.trailers`` (the client sent TE: trailers)."""
    result = dict(extensions)
    result["http.response.trailers"] = {}
    return result


# ---------------------------------------------------------------------------- early hints
async def early_hint(conn: HTTPConnection, cycle: RequestCycle, message: dict) -> None:
    if cycle.status:
        raise AppProtocolError("http.response.early_hint after http.response.start")
    links = message.get("links", ())
    if cycle.scope["http_version"] != "1.1" or not links or cycle.disconnected:
        return  # HTTP/1.0 clients do not understand 1xx responses
    parts = [b"HTTP/1.1 103 Early Hints\r\n"]
    for link in links:
        wire.check_header(b"link", link)
        parts.append(b"link: %b\r\n" % link)
    parts.append(b"\r\n")
    conn.write(b"".join(parts))


# ---------------------------------------------------------------------------- file bodies
async def pathsend(conn: HTTPConnection, cycle: RequestCycle, message: dict) -> None:
    path = message.get("path")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise AppProtocolError(f"http.response.pathsend needs an absolute path, got {path!r}")
    _check_started(cycle, "pathsend")
    # a missing file raises here, before anything of the response is on the wire
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        await _send_file(conn, cycle, file, 0, size, more=False)


async def zerocopysend(conn: HTTPConnection, cycle: RequestCycle, message: dict) -> None:
    file = message.get("file")
    if file is None or not hasattr(file, "fileno"):
        raise AppProtocolError("http.response.zerocopysend needs a file object")
    _check_started(cycle, "zerocopysend")
    fd = file.fileno()
    offset = message.get("offset")
    advance = offset is None
    if advance:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    count = message.get("count")
    if count is None:
        count = max(os.fstat(fd).st_size - offset, 0)
    sent = await _send_file(conn, cycle, file, offset, count, more=message.get("more_body", False))
    if advance:
        os.lseek(fd, offset + sent, os.SEEK_SET)


def _check_started(cycle: RequestCycle, what: str) -> None:
    if cycle.head is None:
        raise AppProtocolError(f"http.response.{what} before http.response.start")
    if cycle.response_complete:
        raise AppProtocolError(f"http.response.{what} after the response completed")
    if cycle.disconnected:
        raise ClientDisconnected("client disconnected")


async def _send_file(conn: HTTPConnection, cycle: RequestCycle, file: Any, offset: int,
                     count: int, more: bool) -> int:
    """Frame and send ``count`` bytes of ``file`` from ``offset``; returns the bytes sent."""
    head = cycle.head or b""
    cycle.head = b""
    if cycle.head_request or cycle.status in (204, 304):
        count = 0
    elif not cycle.chunked and cycle.length_left is not None:
        if count > cycle.length_left:
            count = cycle.length_left
            cycle.keep_alive = False  # the app promised less than the file holds
        cycle.length_left -= count
    prefix = b"%x\r\n" % count if cycle.chunked and count else b""
    suffix = b"\r\n" if cycle.chunked and count else b""
    if cycle.chunked and not more:
        suffix += wire.LAST_CHUNK
    conn.write(head + prefix) if head or prefix else None
    sent = 0
    if count:
        try:
            sent = await _stream(conn, file, offset, count)
        except ConnectionError:  # reset or broken pipe from sendfile (asyncio's loop.sendfile)
            sent = -1
        if sent < count:
            # The peer went away mid-body (a file shorter than promised raised already): the
            # response cannot complete, and the app hears it as every send does (spec 2.4).
            cycle.feed_disconnect()
            conn.close()
            raise ClientDisconnected("client disconnected during a file body")
        if cycle.access is not None:
            cycle.access.sent += sent  # for Gunicorn's access log (%(B)s) and post_request
    if suffix:
        conn.write(suffix)
    if not more:
        if cycle.length_left:
            cycle.keep_alive = False
        cycle.response_complete = True
        conn.response_done(cycle)
    elif conn.write_paused:
        await conn.drain()
    return sent


async def _stream(conn: HTTPConnection, file: Any, offset: int, count: int) -> int:
    transport = conn.transport
    loop = conn.loop
    fd = file.fileno()
    if transport.get_extra_info("sslcontext") is None:
        conn.flush()
        try:
            return await loop.sendfile(transport, file, offset, count, fallback=False)
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


HANDLERS = {
    "http.response.pathsend": pathsend,
    "http.response.zerocopysend": zerocopysend,
    "http.response.early_hint": early_hint,
}
