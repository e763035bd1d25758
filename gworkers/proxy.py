"""Proxy headers: one trust check, and the forwarded headers applied while the scope is built.

Trust is decided once per connection (``trusts``), from ``forwarded_allow_ips``: addresses,
CIDR networks, ``*``. A unix-socket peer is trusted, as Gunicorn documents, because nginx in
front over a unix socket depends on it. Headers from an untrusted peer are never applied.
"""

from __future__ import annotations

import ipaddress
from typing import Any


class ProxyTrust:
    def __init__(self, config: Any) -> None:
        self.enabled = config.proxy_headers
        allow = config.forwarded_allow_ips
        self.everyone = "*" in allow
        self.networks = []
        for item in allow:
            if item == "*" or item.startswith("unix:"):
                continue
            self.networks.append(ipaddress.ip_network(item, strict=False))
        self.secure_headers = dict(config.secure_scheme_headers)

    def trusted_host(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)

    def trusts(self, client: tuple | None) -> bool:
        """Whether proxy headers from this peer are believed (``None`` = unix socket peer)."""
        if not self.enabled:
            return False
        if client is None:
            return True
        return self.trusted_host(client[0])

    def apply(self, scope: dict, conn: Any) -> None:
        """Rewrite client, scheme, server and root_path from the forwarded headers."""
        forwarded = xff = proto = host = port = prefix = None
        secure = None
        secure_headers = self.secure_headers
        for name, value in scope["headers"]:
            if name[:2] != b"x-" and name != b"forwarded":
                if secure_headers and name in secure_headers:
                    secure = value.strip().lower() == secure_headers[name]
                continue
            if name == b"x-forwarded-for":
                xff = value if xff is None else xff + b"," + value
            elif name == b"x-forwarded-proto":
                proto = value
            elif name == b"x-forwarded-host":
                host = value
            elif name == b"x-forwarded-port":
                port = value
            elif name == b"x-forwarded-prefix":
                prefix = value
            elif name == b"forwarded":
                forwarded = value if forwarded is None else forwarded + b"," + value
            if secure_headers and name in secure_headers:
                secure = value.strip().lower() == secure_headers[name]
        if forwarded is not None:
            hops = _parse_forwarded(forwarded.decode("latin-1"))
            if hops:
                chain = [h.get("for", "") for h in hops]
                client = self._client_from_chain(chain)
                if client is not None:
                    scope["client"] = client
                last = hops[-1]
                if "proto" in last:
                    proto = last["proto"].encode("latin-1")
                if "host" in last:
                    host = last["host"].encode("latin-1")
        elif xff is not None:
            chain = [h.strip() for h in xff.decode("latin-1").split(",")]
            client = self._client_from_chain(chain)
            if client is not None:
                scope["client"] = client
        if proto is not None:
            value = proto.decode("latin-1").split(",")[-1].strip().lower()
            if value in ("http", "https"):
                scope["scheme"] = value
        elif secure is not None and secure:
            scope["scheme"] = "https"
        if host is not None or port is not None:
            server_host = scope["server"][0] if scope["server"] else ""
            server_port = scope["server"][1] if scope["server"] else None
            if host is not None:
                h = host.decode("latin-1").split(",")[-1].strip()
                if h.startswith("["):
                    end = h.find("]")
                    server_host = h[1:end]
                    rest = h[end + 1 :]
                    if rest.startswith(":") and rest[1:].isdigit():
                        server_port = int(rest[1:])
                elif ":" in h:
                    h, _, p = h.rpartition(":")
                    server_host = h
                    if p.isdigit():
                        server_port = int(p)
                else:
                    server_host = h
                    server_port = 443 if scope["scheme"] == "https" else 80
            if port is not None:
                p = port.decode("latin-1").split(",")[-1].strip()
                if p.isdigit():
                    server_port = int(p)
            scope["server"] = (server_host, server_port)
        if prefix is not None:
            root = prefix.decode("latin-1").split(",")[-1].strip().rstrip("/")
            if root.startswith("/"):
                scope["root_path"] = root
                scope["path"] = root + scope["path"]
                scope["raw_path"] = root.encode("latin-1") + scope["raw_path"]

    def _client_from_chain(self, chain: list[str]) -> tuple[str, int] | None:
        """The right-most address that is not a trusted proxy (the first untrusted hop)."""
        for item in reversed(chain):
            host, port = _split_node(item)
            if not host:
                continue
            if not self.trusted_host(host):
                return (host, port)
        # every hop trusted: the left-most one is the client
        for item in chain:
            host, port = _split_node(item)
            if host:
                return (host, port)
        return None


def _split_node(node: str) -> tuple[str, int]:
    node = node.strip().strip('"')
    if node.startswith("["):
        end = node.find("]")
        host = node[1:end]
        rest = node[end + 1 :]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 0
        return host, port
    if node.count(":") == 1:
        host, _, p = node.partition(":")
        return host, int(p) if p.isdigit() else 0
    if node.lower() == "unknown" or node.startswith("_"):
        return "", 0
    return node, 0


def _parse_forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded``: a list of hops, each a dict of lower-cased parameters."""
    hops = []
    for element in value.split(","):
        params: dict[str, str] = {}
        for pair in element.split(";"):
            key, sep, val = pair.partition("=")
            if not sep:
                continue
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            params[key.strip().lower()] = val
        if params:
            hops.append(params)
    return hops
