"""Proxy-header trust: real Gunicorn over TCP (IPv4, IPv6) and a unix socket, both workers, plus
sans-IO checks of the parsing rules in ``gworkers.proxy``."""

from __future__ import annotations

import itertools
import json
import socket

import pytest

from gworkers.config import Config
from gworkers.proxy import ProxyTrust
from tests.conftest import gunicorn_has_setting, gunicorn_takes_networks
from tests.edge.raw import read_response

APP = "tests.edge_apps:app"
ALL = "x-forwarded-for,x-forwarded-proto,x-forwarded-host,x-forwarded-port,x-forwarded-prefix,forwarded"


def scope_of(server, headers: dict[str, str], path: str = "/p?q=1") -> dict:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with server.connect(timeout=15) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: origin.test\r\n{lines}\r\n".encode("latin-1"))
        status, _, body = read_response(sock)
    assert status == 200
    return json.loads(body)


def start(start_server, config_worker, worker, bind="127.0.0.1:0", args=(), **kwargs):
    path, env = config_worker(worker, **kwargs)
    return start_server(app=APP, worker=path, bind=bind, args=list(args), env=env)


FORWARDED = {
    "X-Forwarded-For": "203.0.113.9, 10.1.2.3",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "public.example:8443",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/mount",
}


@pytest.mark.parametrize("source", ["CONFIG_KWARGS", "gunicorn"])
def test_trusted_ipv4_peer(start_server, config_worker, worker, source):
    """Networks in forwarded_allow_ips: from CONFIG_KWARGS on every Gunicorn, and from Gunicorn's
    own setting where it takes networks (24.1+). Gunicorn 23 refuses a network there at startup,
    before any worker runs, which is why deploy/cdn.md sends its users to CONFIG_KWARGS."""
    trusted = "127.0.0.1,10.0.0.0/8"
    if source == "CONFIG_KWARGS":
        server = start(start_server, config_worker, worker, forwarded_headers=ALL,
                       forwarded_allow_ips=trusted)
    elif gunicorn_takes_networks():
        server = start(start_server, config_worker, worker,
                       args=["--forwarded-allow-ips", trusted], forwarded_headers=ALL)
    else:
        with pytest.raises(AssertionError, match=r"(?s)gunicorn exited \(1\).*'10\.0\.0\.0/8'"):
            start(start_server, config_worker, worker,
                  args=["--forwarded-allow-ips", trusted], forwarded_headers=ALL)
        return
    scope = scope_of(server, FORWARDED)
    assert scope["client"] == ["203.0.113.9", 0]  # the right-most untrusted hop
    assert scope["scheme"] == "https"
    assert scope["server"] == ["public.example", 8443]
    assert ["host", "public.example:8443"] in scope["headers"]
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/p"
    assert scope["raw_path"] == "/mount/p"


def test_default_trusts_only_for_and_proto(start_server, config_worker, worker):
    server = start(start_server, config_worker, worker)
    scope = scope_of(server, FORWARDED)
    assert scope["client"] == ["10.1.2.3", 0]  # 10.1.2.3 is not trusted by default
    assert scope["scheme"] == "https"
    assert scope["server"][0] == "127.0.0.1"
    assert ["host", "origin.test"] in scope["headers"]
    assert scope["root_path"] == "" and scope["path"] == "/p"


def test_untrusted_peer_headers_untouched(start_server, config_worker, worker):
    server = start(start_server, config_worker, worker,
                   args=["--forwarded-allow-ips", "10.9.9.9"], forwarded_headers=ALL)
    scope = scope_of(server, {**FORWARDED, "Forwarded": "for=198.51.100.1;proto=https",
                              "X-Forwarded-Ssl": "on"})
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"
    assert scope["server"][0] == "127.0.0.1"
    assert scope["root_path"] == "" and scope["path"] == "/p"
    for name, value in FORWARDED.items():
        assert [name.lower(), value] in scope["headers"]


def test_forwarded_allow_ips_from_environment(start_server, config_worker, worker):
    path, env = config_worker(worker)
    env["FORWARDED_ALLOW_IPS"] = "10.9.9.9"  # Gunicorn's default comes from it
    server = start_server(app=APP, worker=path, env=env)
    scope = scope_of(server, {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"})
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"


def test_trusted_ipv6_peer(start_server, config_worker, worker):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    server = start(start_server, config_worker, worker, bind="[::1]:0", forwarded_headers=ALL)
    assert server.host == "::1"
    scope = scope_of(server, {"Forwarded": 'for="[2001:db8::7]:4711";proto=https;host="a.example"'})
    assert scope["client"] == ["2001:db8::7", 4711]
    assert scope["scheme"] == "https"
    assert scope["server"] == ["a.example", 443]
    scope = scope_of(server, {"X-Forwarded-For": "2001:db8::8, ::1"})
    assert scope["client"] == ["2001:db8::8", 0]


def test_untrusted_ipv6_peer(start_server, config_worker, worker):
    server = start(start_server, config_worker, worker, bind="[::1]:0",
                   args=["--forwarded-allow-ips", "127.0.0.1"])
    scope = scope_of(server, {"X-Forwarded-For": "2001:db8::8", "X-Forwarded-Proto": "https"})
    assert scope["client"][0] == "::1"
    assert scope["scheme"] == "http"


def test_unix_socket_peer_is_trusted(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, bind=f"unix:{tmp_path}/g.sock",
                   args=["--forwarded-allow-ips", "10.9.9.9"])
    assert server.uds
    scope = scope_of(server, {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"})
    assert scope["client"] == ["198.51.100.4", 0]
    assert scope["scheme"] == "https"


def test_proxy_headers_off(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, bind=f"unix:{tmp_path}/g.sock",
                   proxy_headers=False)
    scope = scope_of(server, {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"})
    assert scope["client"] is None
    assert scope["scheme"] == "http"


def test_secure_scheme_headers(start_server, config_worker, worker):
    server = start(start_server, config_worker, worker)
    assert scope_of(server, {"X-Forwarded-Ssl": "on"})["scheme"] == "https"
    assert scope_of(server, {"X-Forwarded-Protocol": "ssl"})["scheme"] == "https"
    assert scope_of(server, {"X-Forwarded-Ssl": "off"})["scheme"] == "http"


def test_root_path_from_config(start_server, config_worker, worker):
    server = start(start_server, config_worker, worker, root_path="/api")
    scope = scope_of(server, {}, path="/items/a%20b?x=1")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/a b"
    assert scope["raw_path"] == "/api/items/a%20b"
    assert scope["query_string"] == "x=1"


def test_root_path_from_gunicorn_setting(start_server, config_worker, worker, tmp_path):
    """Gunicorn 25+'s own root_path setting is read; a Gunicorn without it (23, 24) ignores the
    line in its config file, and the worker, finding no such setting, boots with root_path ""
    instead of failing on the missing attribute."""
    conf = tmp_path / "gunicorn_root.conf.py"
    conf.write_text('root_path = "/api"\n')
    server = start(start_server, config_worker, worker, args=["-c", str(conf)])
    scope = scope_of(server, {}, path="/items/a%20b?x=1")
    root = "/api" if gunicorn_has_setting("root_path") else ""
    assert scope["root_path"] == root
    assert scope["path"] == root + "/items/a b"
    assert scope["raw_path"] == root + "/items/a%20b"


# One value per opted-in header; ``expected_scope`` says what each combination must give.
OPTED_IN = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "public.example",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/mount",
}


def expected_scope(sent: dict[str, str], server_port: int) -> dict:
    https = "X-Forwarded-Proto" in sent
    if "X-Forwarded-Port" in sent:
        port = 8443
    elif "X-Forwarded-Host" in sent:
        port = 443 if https else 80  # a forwarded host without a port: the scheme's default
    else:
        port = server_port
    root = "/mount" if "X-Forwarded-Prefix" in sent else ""
    return {
        "client": "203.0.113.9" if "X-Forwarded-For" in sent else "127.0.0.1",
        "scheme": "https" if https else "http",
        "server": ["public.example" if "X-Forwarded-Host" in sent else "127.0.0.1", port],
        "host": "public.example" if "X-Forwarded-Host" in sent else "origin.test",
        "root_path": root,
        "path": root + "/p",
    }


def test_each_opted_in_header_alone_and_combined(start_server, config_worker, worker):
    """Every subset of the opted-in X-Forwarded-* headers, under Gunicorn's default (non-empty)
    secure_scheme_headers: Port and Prefix apply without Proto beside them, too."""
    server = start(start_server, config_worker, worker, forwarded_headers=ALL)
    names = list(OPTED_IN)
    for count in range(len(names) + 1):
        for subset in itertools.combinations(names, count):
            sent = {name: OPTED_IN[name] for name in subset}
            scope = scope_of(server, sent)
            got = {
                "client": scope["client"][0],
                "scheme": scope["scheme"],
                "server": scope["server"],
                "host": dict(scope["headers"])["host"],
                "root_path": scope["root_path"],
                "path": scope["path"],
            }
            assert got == expected_scope(sent, server.port), subset


# ---------------------------------------------------------------------- sans-IO rules
def trust(**kwargs) -> ProxyTrust:
    kwargs.setdefault("forwarded_headers", ALL)
    return ProxyTrust(Config(**kwargs))


def make_scope(headers, kind="http", root=""):
    return {"type": kind, "scheme": "ws" if kind == "websocket" else "http",
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "root_path": root,
            "path": root + "/x", "raw_path": root.encode() + b"/x",
            "headers": [(b"host", b"origin.test")] + [(n.encode(), v.encode()) for n, v in headers]}


def applied(headers, kind="http", root="", **kwargs):
    scope = make_scope(headers, kind, root)
    trust(**kwargs).apply(scope, None)
    return scope


def test_trust_rules():
    t = trust(forwarded_allow_ips="10.0.0.0/8, 2001:db8::/32")
    assert t.trusts(("10.2.3.4", 1)) and t.trusts(("2001:db8::1", 1))
    assert t.trusts(("::ffff:10.0.0.1", 1))  # IPv4-mapped
    assert not t.trusts(("127.0.0.1", 1)) and not t.trusts(("::1", 1))
    assert t.trusts(None)  # unix-socket peer
    assert trust(forwarded_allow_ips="*").trusts(("198.51.100.1", 1))
    assert not trust(proxy_headers=False).trusts(None)


def test_xff_chain_walk():
    headers = [("x-forwarded-for", "1.1.1.1, 2.2.2.2"), ("x-forwarded-for", "127.0.0.1")]
    assert applied(headers)["client"] == ("2.2.2.2", 0)  # two header lines are one list
    assert applied([("x-forwarded-for", "1.1.1.1:99, 127.0.0.1")])["client"] == ("1.1.1.1", 99)
    assert applied([("x-forwarded-for", "[2001:db8::1]:80")])["client"] == ("2001:db8::1", 80)
    # every hop trusted: the left-most is the client
    assert applied([("x-forwarded-for", "1.1.1.1, 2.2.2.2")],
                   forwarded_allow_ips="*")["client"] == ("1.1.1.1", 0)
    # garbage is not an address: the client is left as it was
    assert applied([("x-forwarded-for", "not-an-ip")])["client"] == ("127.0.0.1", 5000)


def test_proto_read_at_the_client_hop():
    # a spoofed proto from the client, then the proxy's own: the proxy's wins
    scope = applied([("x-forwarded-for", "1.1.1.1"), ("x-forwarded-proto", "https, http")])
    assert scope["scheme"] == "http"
    scope = applied([("x-forwarded-for", "1.1.1.1, 127.0.0.1"),
                     ("x-forwarded-proto", "https, http")])
    assert scope["scheme"] == "https"
    assert applied([("x-forwarded-proto", "https")], kind="websocket")["scheme"] == "wss"
    assert applied([("x-forwarded-proto", "wss")])["scheme"] == "https"
    assert applied([("x-forwarded-proto", "gopher")])["scheme"] == "http"


def test_forwarded_header():
    scope = applied([("forwarded", 'for=192.0.2.60;proto=https;by=203.0.113.43;host="a.b:81"')])
    assert scope["client"] == ("192.0.2.60", 0)
    assert scope["scheme"] == "https" and scope["server"] == ("a.b", 81)
    # quoted values may hold separators; case-insensitive parameter names
    scope = applied([("forwarded", 'For="[2001:db8::1]:4711";Proto=https;host="x,y"')])
    assert scope["client"] == ("2001:db8::1", 4711)
    assert scope["server"] == ("127.0.0.1", 8000)  # "x,y" is not a valid host: ignored
    # hops: the right-most untrusted one wins
    scope = applied([("forwarded", "for=1.1.1.1;proto=http, for=2.2.2.2;proto=https"),
                     ("forwarded", "for=127.0.0.1;proto=http")])
    assert scope["client"] == ("2.2.2.2", 0) and scope["scheme"] == "https"
    # obfuscated identifier: the client stays the peer, the hop's proto still applies
    scope = applied([("forwarded", "for=_hidden;proto=https")])
    assert scope["client"] == ("127.0.0.1", 5000) and scope["scheme"] == "https"
    # malformed: nothing from it is applied
    for bad in ('for="1.1.1.1', "for=1.1.1.1;for=2.2.2.2", "garbage"):
        scope = applied([("forwarded", bad), ("x-forwarded-for", "3.3.3.3")])
        assert scope["client"] in (("127.0.0.1", 5000), ("3.3.3.3", 0))
        assert scope["client"] != ("1.1.1.1", 0)
    # Forwarded wins over X-Forwarded-* when both are present
    scope = applied([("forwarded", "for=1.1.1.1;proto=http"), ("x-forwarded-for", "2.2.2.2"),
                     ("x-forwarded-proto", "https")])
    assert scope["client"] == ("1.1.1.1", 0) and scope["scheme"] == "http"
    # Forwarded is believed only when configured
    scope = applied([("forwarded", "for=1.1.1.1")], forwarded_headers="x-forwarded-for")
    assert scope["client"] == ("127.0.0.1", 5000)


def test_host_port_prefix():
    scope = applied([("x-forwarded-host", "[2001:db8::5]:444")])
    assert scope["server"] == ("2001:db8::5", 444)
    assert (b"host", b"[2001:db8::5]:444") in scope["headers"]
    assert applied([("x-forwarded-host", "evil host")])["server"] == ("127.0.0.1", 8000)
    assert applied([("x-forwarded-port", "99999")])["server"] == ("127.0.0.1", 8000)
    assert applied([("x-forwarded-port", "81")])["server"] == ("127.0.0.1", 81)
    scope = applied([("x-forwarded-prefix", "/a%20b/")], root="/cfg")
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("/a b", "/a b/x", b"/a%20b/x")
    for bad in ("relative", "//double", "/q?x"):
        assert applied([("x-forwarded-prefix", bad)])["root_path"] == ""


def test_port_and_prefix_beside_secure_scheme_headers():
    """With secure_scheme_headers set (Gunicorn's default is not empty), Port and Prefix still
    apply when no X-Forwarded-Proto came with them."""
    secure = {"X-Forwarded-Ssl": "on"}
    assert applied([("x-forwarded-port", "81")],
                   secure_scheme_headers=secure)["server"] == ("127.0.0.1", 81)
    assert applied([("x-forwarded-prefix", "/m")], secure_scheme_headers=secure)["root_path"] == "/m"
    scope = applied([("x-forwarded-ssl", "on"), ("x-forwarded-port", "8443")],
                    secure_scheme_headers=secure)
    assert scope["scheme"] == "https" and scope["server"] == ("127.0.0.1", 8443)
