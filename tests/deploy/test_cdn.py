"""deploy/cdn.md: the trust chain CDN -> nginx -> worker, with a real two-hop X-Forwarded-For.

127.0.0.3 stands in for a CDN edge: it connects to nginx and sends the X-Forwarded-For a CDN
sends (the visitor's address); nginx appends the edge's address; the worker, trusting nginx
(unix socket) and the CDN's ranges (forwarded_allow_ips), must name the visitor as client.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import gunicorn_takes_networks
from tests.deploy.nginx_stack import NginxStack, issue_cert
from tests.deploy.support import request, short_dir

CDN_EDGE = "127.0.0.3"
VISITOR = "198.51.100.7"
DEFAULT_TRUST = 'forwarded_allow_ips = "127.0.0.1,::1"'
# deploy/cdn.md's worker subclass for Gunicorn 23, written next to the app
CDN_WORKER = """\
import gworkers

class CDNWorker(gworkers.Worker):
    CONFIG_KWARGS = {{"forwarded_allow_ips": "{trusted}"}}
"""


@pytest.fixture
def cdn_stack(tmp_path, tls_files, start_server, request):
    trust_cdn = request.param
    trusted = f"127.0.0.1,::1,{CDN_EDGE}/32"
    edits, worker = {}, "gworkers.Worker"
    if trust_cdn and gunicorn_takes_networks():
        # the recipe for Gunicorn 24.1+: the ranges in gunicorn.conf.py
        edits = {DEFAULT_TRUST: f'forwarded_allow_ips = "{trusted}"'}
    elif trust_cdn:
        # Gunicorn 23 refuses networks in its own setting: the recipe's worker subclass
        worker = "cdn_worker.CDNWorker"
    with short_dir() as d:
        s = NginxStack(tmp_path, Path(d), tls_files["ca"], conf_edits=edits)
        (s.app / "cdn_worker.py").write_text(CDN_WORKER.format(trusted=trusted))
        s.gunicorn = start_server(app="main:app", worker=worker, args=s.gunicorn_args(),
                                  env={"WEB_CONCURRENCY": "1"}, bind=f"unix:{s.socket_path}")
        s.start_nginx(*issue_cert(tls_files, tmp_path, "example.com"))
        try:
            yield s
        finally:
            s.stop()


def via_cdn(stack, xff: str):
    return request(stack.https, "/", tls=stack.tls(), source=CDN_EDGE,
                   headers={"X-Forwarded-For": xff, "X-Forwarded-Proto": "https"}).json()


@pytest.mark.parametrize("cdn_stack", [True], indirect=True)
def test_cdn_ranges_trusted_name_the_visitor(cdn_stack):
    scope = via_cdn(cdn_stack, VISITOR)
    assert dict(scope["headers"])["x-forwarded-for"] == f"{VISITOR}, {CDN_EDGE}"
    assert scope["client"][0] == VISITOR
    assert scope["scheme"] == "https"
    # a visitor forging its own X-Forwarded-For to the CDN: the CDN appends the real address,
    # and the worker stops at the first untrusted hop from the right
    scope = via_cdn(cdn_stack, f"203.0.113.66, {VISITOR}")
    assert scope["client"][0] == VISITOR
    # bypassing the CDN and forging the whole chain does not work either
    scope = request(cdn_stack.https, "/", tls=cdn_stack.tls(), source="127.0.0.2",
                    headers={"X-Forwarded-For": f"{VISITOR}, {CDN_EDGE}"}).json()
    assert scope["client"][0] == "127.0.0.2"


@pytest.mark.parametrize("cdn_stack", [False], indirect=True)
def test_without_cdn_ranges_the_edge_is_the_client(cdn_stack):
    scope = via_cdn(cdn_stack, VISITOR)
    assert scope["client"][0] == CDN_EDGE
