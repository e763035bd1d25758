"""Application loading and interface detection (gworkers/apps.py): sans-IO detection, then
ASGI3, ASGI2 and WSGI apps served by real Gunicorn, detected and forced."""

from __future__ import annotations

import functools

import pytest

from gworkers.apps import ASGI2Middleware, adapt, detect_interface
from tests import apps
from tests.conftest import write_worker_module


async def _asgi3(scope, receive, send):
    pass


class _ASGI3Instance:
    async def __call__(self, scope, receive, send):
        pass


class _ASGI2Class:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        pass


class _WSGIInstance:
    def __call__(self, environ, start_response):
        return []


def _wsgi(environ, start_response):
    return []


@pytest.mark.parametrize(("app", "interface"), [
    (_asgi3, "asgi3"),
    (_ASGI3Instance(), "asgi3"),
    (functools.partial(_asgi3), "asgi3"),
    (apps.asgi2_app, "asgi2"),
    (_ASGI2Class, "asgi2"),
    (_wsgi, "wsgi"),
    (_WSGIInstance(), "wsgi"),
    (apps.wsgi_app, "wsgi"),
])
def test_detect_interface(app, interface):
    assert detect_interface(app) == interface


def test_adapt_forced():
    wrapped, interface = adapt(apps.asgi2_app, "asgi2")
    assert isinstance(wrapped, ASGI2Middleware) and interface == "asgi2"
    same, interface = adapt(_asgi3, "auto")
    assert same is _asgi3 and interface == "asgi3"


FORCED = """
from gworkers import Worker, H11Worker

class Custom(Worker):
    CONFIG_KWARGS = {{"interface": "{0}"}}

class CustomH11(H11Worker):
    CONFIG_KWARGS = {{"interface": "{0}"}}
"""


@pytest.mark.parametrize(("app", "expected"), [
    ("tests.apps:asgi2_app", b"asgi2 /hello"),
    ("tests.apps:wsgi_app", b"wsgi /hello"),
    ("tests.apps:no_lifespan", b"no lifespan"),
])
def test_interfaces_detected(start_server, worker, app, expected):
    server = start_server(app=app, worker=worker)
    with server.client() as client:
        assert client.get("/hello").content == expected


@pytest.mark.parametrize(("app", "interface", "expected"), [
    ("tests.apps:asgi2_app", "asgi2", b"asgi2 /hello"),
    ("tests.apps:wsgi_app", "wsgi", b"wsgi /hello"),
])
def test_interfaces_forced(start_server, worker, tmp_path, app, interface, expected):
    env = write_worker_module(tmp_path, "custom", FORCED.format(interface))
    cls = "custom.Custom" if worker == "gworkers.Worker" else "custom.CustomH11"
    server = start_server(app=app, worker=cls, env=env)
    with server.client() as client:
        assert client.get("/hello").content == expected
    assert f"{interface} app" in server.log()


def test_wrong_forced_interface_is_500_not_a_crash(start_server, worker, tmp_path):
    env = write_worker_module(tmp_path, "custom", FORCED.format("asgi3"))
    cls = "custom.Custom" if worker == "gworkers.Worker" else "custom.CustomH11"
    server = start_server(app="tests.apps:wsgi_app", worker=cls, env=env,
                          args=["--log-level", "debug"])
    with server.client() as client:
        assert client.get("/hello").status_code == 500
        assert client.get("/hello").status_code == 500  # the worker still serves
    assert "Exception in ASGI application" in server.log()
