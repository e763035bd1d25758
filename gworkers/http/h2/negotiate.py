"""Which protocol a new connection speaks: ALPN, the h2c preface, or ``Upgrade: h2c``.

The server's protocol factory makes one class per worker (``connection_class``): plain
``HTTPConnection`` when HTTP/2 is off, so HTTP/1.1 pays nothing for it. When it is on, the
connection starts as a subclass of ``HTTPConnection`` with no slots of its own that decides once
and then becomes (``__class__`` assignment, same layout) the class that serves the rest of the
connection, so no per-request check is left behind:

* TLS: the protocol ALPN chose (``h2`` -> ``H2Protocol``), read when the handshake is done;
* h2c by prior knowledge: the first bytes of the connection are the client preface
  (``PRI * HTTP/2.0``...); one comparison on the first read only. A first read shorter than
  4 bytes is taken as HTTP/1.1 (a client trickling the preface byte by byte is not served
  HTTP/2). With ``proxy_protocol`` on, the bytes that follow the PROXY header decide, and the
  HTTP/2 connection keeps the addresses the header gave (HAProxy's ``send-proxy`` with
  ``proto h2``), as does an ``Upgrade: h2c``;
* h2c by ``Upgrade: h2c`` with one valid ``HTTP2-Settings`` (RFC 7540 3.2): the request (with a
  Content-Length body of up to 64 KiB, which the client sends before its preface) is answered
  as stream 1 after ``101 Switching Protocols``; a chunked or larger body, or a request
  pipelined behind another, is served on HTTP/1.1 (a server may ignore an upgrade).

h2c is accepted from any peer when the operator turns it on (``http2_cleartext``); unlike
Gunicorn it is not limited to ``forwarded_allow_ips``, and a peer that does not send the preface
is served HTTP/1.1, never refused: the same port serves both.
"""

from __future__ import annotations

import binascii
from typing import Any

from ...errors import ProtocolError
from ..h1.connection import HTTPConnection
from ..h1.limits import Limits
from ..h1.proxy_stage import HeaderStage
from .connection import H2Protocol
from .frames import PREFACE, FrameError
from .hpack_codec import Encoder
from .request import Malformed, read_request
from .settings import PeerSettings, upgrade_payload

# The largest request body an Upgrade: h2c request may carry: it arrives before the client
# preface and is held for stream 1 (a larger one is served on HTTP/1.1).
UPGRADE_BODY_MAX = 65536
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
_HOP = frozenset((b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"te",
                  b"proxy-connection", b"transfer-encoding"))


def connection_class(config: Any, tls: bool) -> type:
    """The protocol class the server makes for each accepted connection."""
    if "h2" not in config.http_protocols:
        return HTTPConnection
    if tls:
        return AlpnConnection
    mode = config.http2_cleartext
    if mode == "off":
        return HTTPConnection
    if mode == "upgrade":
        return UpgradeConnection
    return PrefaceOrUpgradeConnection if mode == "both" else PrefaceConnection


class AlpnConnection(HTTPConnection):
    """TLS: HTTP/2 when the client chose ``h2`` in ALPN, else HTTP/1.1 from here on."""

    __slots__ = ()

    def connection_made(self, transport: Any) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            protocol = H2Protocol(self.context)
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            return
        self.__class__ = HTTPConnection
        HTTPConnection.connection_made(self, transport)


class PrefaceConnection(HTTPConnection):
    """Cleartext: HTTP/2 when the first bytes are the client preface."""

    __slots__ = ()
    after: type = HTTPConnection  # the class serving HTTP/1.1 from the first byte on

    def data_received(self, data: bytes) -> None:
        if isinstance(self.parser, HeaderStage):
            # a PROXY protocol header comes first: what follows it decides (proxy_header_read)
            HTTPConnection.data_received(self, data)
            return
        if not self._to_h2(data):
            self.data_received(data)

    def proxy_header_read(self, rest: bytes) -> None:
        if rest and not self._to_h2(rest):
            self.parser.feed(rest)
        # (nothing followed the header: the next read decides, in data_received)

    def _to_h2(self, data: bytes) -> bool:
        """Leave this class for good: hand the connection to HTTP/2 when ``data`` (its first
        bytes, after any PROXY header) is the client preface and return True; else this object
        serves HTTP/1.1 on (False: the caller feeds it ``data``)."""
        self.__class__ = self.after
        if len(data) >= 4 and data[:4] == b"PRI " and PREFACE.startswith(data[:len(PREFACE)]):
            self.closed = True  # this object no longer owns the transport
            _adopt(H2Protocol(self.context), self, data)  # (registers itself first)
            self.context.registry.connection_lost(self)
            return True
        # uvloop calls the data_received it looked up when the protocol was set: set it again,
        # or every later read of this connection would come back here
        self.transport.set_protocol(self)
        return False


class UpgradeConnection(HTTPConnection):
    """Cleartext HTTP/1.1 that honours ``Upgrade: h2c``."""

    __slots__ = ()

    def on_request(self, method: bytes, target: bytes, version: str, headers: list,
                   notable: list | None = None) -> bool:
        if self.cycle is None and not self.pipeline and self.upgrade_to is None:
            protocol = self._h2c(method, target, version, headers, notable)
            if protocol is not None:
                self.upgrade_to = protocol
                return True
        return super().on_request(method, target, version, headers, notable)

    def _h2c(self, method: bytes, target: bytes, version: str, headers: list,
             notable: list | None) -> H2Protocol | None:
        """The HTTP/2 connection taking this request over, or None to serve it on HTTP/1.1."""
        fields = notable if notable is not None else headers
        if not any(n == b"upgrade" and v.strip().lower() == b"h2c" for n, v in fields):
            return None
        if version != "1.1" or target[:1] != b"/" or not self.accepting:
            return None
        settings = []
        tokens: set[bytes] = set()
        regular = []
        for name, value in headers:
            if name == b"http2-settings":
                settings.append(value.strip())
            elif name == b"connection":
                tokens.update(t.strip().lower() for t in value.split(b","))
            elif name == b"transfer-encoding":
                return None  # a chunked body: answered on HTTP/1.1
            elif name == b"content-length" and (not value.isdigit() or int(value) > UPGRADE_BODY_MAX):
                return None
            if name not in _HOP:
                regular.append((name, value))
        if len(settings) != 1 or not {b"upgrade", b"http2-settings"} <= tokens:
            return None
        if not _settings_ok(settings[0]):
            return None
        pseudo = [(b":method", method), (b":scheme", b"http"), (b":path", target)]
        try:
            request = read_request(pseudo + regular, Limits(self.config),
                                   self.config.limit_request_body)
        except (Malformed, ProtocolError):
            return None  # served (and refused) on HTTP/1.1
        return UpgradedH2Protocol(self.context, settings[0], request, self)


class UpgradedH2Protocol(H2Protocol):
    """The HTTP/2 connection an ``Upgrade: h2c`` request becomes: the request is stream 1
    (answered after ``101 Switching Protocols``), its body arrives as HTTP/1.1 bytes before the
    client preface and is pushed to stream 1 as it comes."""

    # (``registry``: set by the HTTP/1.1 hand-off, ``Upgrades.on_upgrade``, as on a session)
    __slots__ = ("registry", "upgrade", "upgrade_body")

    def __init__(self, context: Any, settings: bytes, request: Any, reader: Any) -> None:
        super().__init__(context)
        # (HTTP2-Settings, the request, the HTTP/1.1 connection that read it), until ``start``
        self.upgrade = (settings, request, reader)
        self.upgrade_body = request.content_length or 0  # its body's bytes still to come

    def start(self, transport: Any, rest: bytes) -> None:
        """Take the transport over from the HTTP/1.1 connection (which registered us): 101,
        our preface, the request as stream 1, then what followed its head in ``rest``."""
        settings, request, reader = self.upgrade
        self.upgrade = None
        transport.write(SWITCHING)
        self._attach(transport, register=False)
        _take_addresses(self, reader)
        self.core.initiate(settings)
        self.core.last_stream = 1
        self._open(1, request, not self.upgrade_body)
        self.flush()
        transport.resume_reading()
        if rest:
            self.data_received(rest)

    def data_received(self, data: bytes) -> None:
        if self.upgrade_body:
            n = min(len(data), self.upgrade_body)
            self.upgrade_body -= n
            sink = self.streams.get(1)
            if sink is not None and not sink.stream.disconnected:
                sink.body_progress += n
                sink.stream.on_body(data[:n])
                if not self.upgrade_body:
                    sink.receiving = False
                    sink.stream.on_body_end()
            data = data[n:]
            if not data:
                return
        H2Protocol.data_received(self, data)


class PrefaceOrUpgradeConnection(PrefaceConnection):
    """Cleartext, ``http2_cleartext = both``: the preface, else HTTP/1.1 with Upgrade."""

    __slots__ = ()
    after = UpgradeConnection


def _adopt(protocol: H2Protocol, reader: HTTPConnection, data: bytes) -> None:
    """HTTP/2 by prior knowledge: ``protocol`` takes over the transport of ``reader``, the
    HTTP/1.1 connection that read the client preface (``data``, and what followed it)."""
    transport = reader.transport
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    _take_addresses(protocol, reader)
    protocol.data_received(data)


def _take_addresses(protocol: H2Protocol, reader: HTTPConnection) -> None:
    """The endpoints, scheme and proxy-header trust of the HTTP/1.1 connection that read the
    first bytes: a PROXY protocol header before them may have changed all four."""
    protocol.client, protocol.sockname = reader.client, reader.sockname
    protocol.scheme, protocol.trusted = reader.scheme, reader.trusted


def _settings_ok(payload: bytes) -> bool:
    """The HTTP2-Settings value: base64url of whole 6-byte settings (RFC 7540 3.2.1), each
    in its allowed range (an upgrade we would have to end with GOAWAY is not taken)."""
    try:
        PeerSettings().apply(upgrade_payload(payload), Encoder())
    except (binascii.Error, ValueError, FrameError):
        return False
    return True
