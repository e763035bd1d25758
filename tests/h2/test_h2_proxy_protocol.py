"""HTTP/2 behind a PROXY protocol header (HAProxy's ``send-proxy`` in front of an h2c backend,
``proto h2``): the header comes first, then the client preface or an ``Upgrade: h2c`` request,
and every stream's scope carries the addresses the header gave, as on HTTP/1.1. Both workers,
raw sockets (the header built by hand, from HAProxy's spec)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import WORKERS
from tests.edge.test_proxy_protocol_parser import inet, v2
from tests.h2.client import H2Client

pytestmark = pytest.mark.parametrize("worker", WORKERS)

V1 = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\r\n"
V2 = v2(1, 0x11, inet("203.0.113.7", "198.51.100.1", 56324, 443))
PROXY_ON = ["--proxy-protocol", "--log-level", "debug"]


def scope_of(response) -> dict:
    assert response.status == 200 and response.reset is None, response
    return json.loads(bytes(response.data))


@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
@pytest.mark.parametrize("together", [True, False], ids=["with-preface", "alone"])
def test_prior_knowledge_after_a_proxy_header(start_h2, worker, header, together):
    h2 = start_h2(worker, args=PROXY_ON)
    if together:  # header and preface in one write: the preface check sees what follows it
        client = H2Client(h2.server, preface=False)
        client.conn.initiate_connection()
        client.send_raw(header + client.conn.data_to_send())
    else:
        client = H2Client(h2.server, proxy_header=header)
    for _ in range(2):  # every stream of the connection
        scope = scope_of(client.response(client.request("/scope")))
        assert scope["http_version"] == "2"
        assert scope["client"] == ["203.0.113.7", 56324]
        assert scope["server"] == ["198.51.100.1", 443]


def test_upgrade_after_a_proxy_header(start_h2, worker):
    h2 = start_h2(worker, args=PROXY_ON)
    client = H2Client(h2.server, preface=False, proxy_header=V1)
    assert client.upgrade("/scope").startswith(b"HTTP/1.1 101 ")
    scope = scope_of(client.response(1))
    assert scope["http_version"] == "2"
    assert scope["client"] == ["203.0.113.7", 56324]
    assert scope["server"] == ["198.51.100.1", 443]


def test_http1_still_served_after_a_proxy_header(start_h2, worker):
    h2 = start_h2(worker, args=PROXY_ON)
    with h2.server.connect() as sock:
        sock.sendall(V1 + b"GET /scope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["client"] == ["203.0.113.7", 56324]
