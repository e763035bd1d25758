"""Proxy headers: one trust check, and the forwarded headers applied while the scope is built.

Trust is decided once per connection (``trusts``) from ``forwarded_allow_ips``: addresses, CIDR
networks, ``*``. A unix-socket peer is trusted, as Gunicorn documents, because nginx in front
over a unix socket depends on it. Headers from an untrusted peer are never applied.

Which headers are believed is a setting (``forwarded_headers``). Only X-Forwarded-For and
X-Forwarded-Proto are on by default: every proxy sets or overwrites them. A proxy that does not
set X-Forwarded-Host, -Port, -Prefix or ``Forwarded`` passes a client's own copy through, so
believing those by default would let any client rewrite its Host or root_path (Werkzeug's
ProxyFix makes the same choice). Turn them on when the proxy in front sets them.

The client is found by walking the hop list from the right (the hop the trusted peer added)
past every trusted proxy; the first untrusted hop is the client. When every hop is trusted
(``*`` trusts everyone) the left-most one is. Proto, Host, Port and Prefix are read at the same
hop when the header carries one value per hop, and from the single value a proxy set otherwise.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .http.target import decode_path

_SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss"), "ws": ("http", "ws"),
            "wss": ("https", "wss")}
# A forwarded host: a DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port.
# Stricter than Host's reg-name on purpose: the value came through a proxy, not from our parser.
_HOST = re.compile(rb"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_PREFIX_BAD = frozenset("?#\\ \t\"<>`{}|^") | frozenset(chr(c) for c in range(32))


class ProxyTrust:
    """The one trust function (``trusts``) and the one place headers are applied (``apply``)."""

    def __init__(self, config: Any) -> None:
        self.enabled = bool(config.proxy_headers)
        allow = config.forwarded_allow_ips
        self.everyone = "*" in allow
        self.networks = tuple(
            ipaddress.ip_network(item, strict=False)
            for item in allow
            if item != "*" and not item.startswith("unix:")
        )
        wanted = set(getattr(config, "forwarded_headers", ("x-forwarded-for", "x-forwarded-proto")))
        self.secure_headers = dict(config.secure_scheme_headers)
        self.wanted = frozenset(n.encode() for n in wanted)
        self.use_forwarded = b"forwarded" in self.wanted
        # names looked for in one pass over the request headers
        self.names = self.wanted | frozenset(self.secure_headers)

    # ------------------------------------------------------------------ trust
    def trusted_host(self, host: str) -> bool:
        """Whether ``host`` (an address string) is a trusted proxy."""
        if self.everyone:
            return True
        addr = _ip(host)
        if addr is None:
            return False
        if any(addr in net for net in self.networks if net.version == addr.version):
            return True
        mapped = getattr(addr, "ipv4_mapped", None)
        return mapped is not None and any(mapped in net for net in self.networks)

    def trusts(self, client: tuple | None) -> bool:
        """Whether proxy headers from this peer are believed (``None`` = unix-socket peer)."""
        if not self.enabled:
            return False
        if client is None:
            return True
        return self.trusted_host(client[0])

    # ------------------------------------------------------------------ apply
    def apply(self, scope: dict, conn: Any, fields: list | None = None) -> None:
        """Rewrite client, scheme, server, Host and root_path from a trusted peer's headers.

        ``fields``: the request's fields a parser set aside (``head.watched_names``, a superset
        of the proxy headers), so the common request without any costs a short scan.
        """
        names = self.names
        found: dict[bytes, list[bytes]] | None = None
        for name, value in scope["headers"] if fields is None else fields:
            if name in names:
                if found is None:
                    found = {}
                found.setdefault(name, []).append(value)
        if found is None:
            return
        hop_from_right, proto, host = self._apply_client(scope, found)
        if proto is None:
            proto = self._forwarded_value(found, b"x-forwarded-proto", hop_from_right)
        if host is None:
            host = self._forwarded_value(found, b"x-forwarded-host", hop_from_right)
        self._apply_scheme(scope, found, proto)
        if host is not None:
            self._apply_host(scope, host)
        port = _port(self._forwarded_value(found, b"x-forwarded-port", hop_from_right))
        if port is not None:
            server = scope["server"]
            scope["server"] = (server[0] if server else "", port)
        prefix = self._forwarded_value(found, b"x-forwarded-prefix", hop_from_right)
        if prefix is not None:
            _apply_prefix(scope, prefix, conn)

    def _apply_client(self, scope: dict, found: dict) -> tuple[int, str | None, str | None]:
        """The client from ``Forwarded`` (preferred) or ``X-Forwarded-For``: ``(which hop,
        counted from the right, describes it; Forwarded's proto; Forwarded's host)``."""
        forwarded = found.get(b"forwarded") if self.use_forwarded else None
        elements = _parse_forwarded(b",".join(forwarded).decode("latin-1")) if forwarded else None
        if elements:
            index = self._client_index([_node(e.get("for")) for e in elements])
            element = elements[index]
            node = _node(element.get("for"))
            if node[0] is not None:
                scope["client"] = node
            return len(elements) - 1 - index, element.get("proto"), element.get("host")
        if b"x-forwarded-for" in found and b"x-forwarded-for" in self.wanted:
            chain = [_node(item) for item in _items(found[b"x-forwarded-for"])]
            if chain:
                index = self._client_index(chain)
                if chain[index][0] is not None:
                    scope["client"] = chain[index]
                return len(chain) - 1 - index, None, None
        return 0, None, None

    def _forwarded_value(self, found: dict, name: bytes, hop_from_right: int) -> str | None:
        """An ``X-Forwarded-*`` value for the client's hop, if trusted and sent."""
        if name in found and name in self.wanted:
            return _pick(_items(found[name]), hop_from_right)
        return None

    def _apply_scheme(self, scope: dict, found: dict, proto: str | None) -> None:
        ws = scope["type"] == "websocket"
        if proto is not None:
            schemes = _SCHEMES.get(proto.strip().lower())
            if schemes is not None:
                scope["scheme"] = schemes[ws]
        elif self.secure_headers:
            secure = None
            for name, secure_value in self.secure_headers.items():
                values = found.get(name)
                if values is not None:
                    secure = secure or values[-1].strip().lower() == secure_value
            if secure:
                scope["scheme"] = "wss" if ws else "https"

    def _client_index(self, chain: list[tuple[str | None, int]]) -> int:
        """Index of the client hop: the right-most hop that is not a trusted proxy."""
        for index in range(len(chain) - 1, -1, -1):
            host = chain[index][0]
            if host is None or not self.trusted_host(host):
                return index
        return 0

    @staticmethod
    def _apply_host(scope: dict, host: str) -> None:
        raw = host.strip().encode("latin-1")
        if _HOST.fullmatch(raw) is None:
            return  # not a DNS name or an address with an optional port: ignored
        name, port = _split_host(host.strip())
        if port is None:
            port = 443 if scope["scheme"] in ("https", "wss") else 80
        scope["server"] = (name, port)
        scope["headers"] = [(n, raw if n == b"host" else v) for n, v in scope["headers"]]


# ---------------------------------------------------------------------- parsing helpers
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _items(values: list[bytes]) -> list[str]:
    """Comma-separated elements of every line of a header, in order, stripped."""
    out = []
    for value in values:
        for item in value.decode("latin-1").split(","):
            item = item.strip()
            if item:
                out.append(item)
    return out


def _pick(values: list[str], hop_from_right: int) -> str | None:
    """The value at the client's hop when there is one value per hop, else the first one."""
    if not values:
        return None
    if len(values) > hop_from_right:
        return values[-1 - hop_from_right]
    return values[0]


def _port(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 5:
        return None
    port = int(value)
    return port if 0 < port < 65536 else None


def _split_host(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end], _port(host[end + 2 :]) if host[end + 1 : end + 2] == ":" else None
    name, sep, port = host.partition(":")
    return name, _port(port) if sep else None


def _node(node: str | None) -> tuple[str | None, int]:
    """An X-Forwarded-For item or a Forwarded ``for=``: ``(ip or None, port or 0)``.

    Accepts ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]``, ``[::1]:80``; an obfuscated
    identifier (``_hidden``), ``unknown`` or anything that is not an address gives ``None``.
    """
    if not node:
        return None, 0
    node = node.strip()
    port = ""
    if node.startswith("["):
        end = node.find("]")
        if end < 0:
            return None, 0
        host, rest = node[1:end], node[end + 1 :]
        if rest:
            if rest[0] != ":":
                return None, 0
            port = rest[1:]
    elif node.count(":") == 1:
        host, _, port = node.partition(":")
    else:
        host = node
    addr = _ip(host)
    if addr is None:
        return None, 0
    return str(addr), int(port) if port.isdigit() and len(port) <= 5 else 0


def _parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """RFC 7239 ``Forwarded``: one dict of lower-cased parameters per element.

    Quoted strings may hold ``,`` ``;`` ``=`` and backslash escapes. A malformed header (a
    parameter without ``=``, a repeated parameter, an unterminated quote) gives ``None``: none
    of it is applied.
    """
    elements: list[dict[str, str]] = []
    params: dict[str, str] = {}
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in " \t;":
            i += 1
            continue
        if c == ",":
            if params:
                elements.append(params)
            params = {}
            i += 1
            continue
        eq = value.find("=", i)
        if eq < 0:
            return None
        key = value[i:eq].strip().lower()
        if not key or key in params or any(ch in key for ch in ' \t,;"'):
            return None
        i = eq + 1
        if i < n and value[i] == '"':
            out = []
            i += 1
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(value[i])
                i += 1
            if i >= n:
                return None
            i += 1
            params[key] = "".join(out)
        else:
            start = i
            while i < n and value[i] not in ",; \t":
                i += 1
            params[key] = value[start:i]
    if params:
        elements.append(params)
    return elements or None


def _apply_prefix(scope: dict, prefix: str, conn: Any) -> None:
    """X-Forwarded-Prefix replaces the configured root_path (the proxy stripped this prefix)."""
    prefix = prefix.rstrip("/")
    if not prefix.startswith("/") or prefix.startswith("//") or any(c in _PREFIX_BAD for c in prefix):
        return
    old_root = scope["root_path"]
    path = scope["path"][len(old_root) :] if old_root else scope["path"]
    raw_path = scope["raw_path"]
    old_raw = old_root.encode("utf-8") if old_root else b""
    if old_raw and raw_path.startswith(old_raw):
        raw_path = raw_path[len(old_raw) :]
    root = decode_path(prefix.encode("latin-1"))
    scope["root_path"] = root
    scope["path"] = root + path
    scope["raw_path"] = prefix.encode("latin-1") + raw_path
