"""Gunicorn's per-request contract: ``log.access``, statsd metrics, ``pre_request``/``post_request``.

Gunicorn drives its access log (``accesslog``, ``access_log_format``) and its statsd request
metrics (``--statsd-host``) through one call, ``log.access(resp, req, environ, request_time)``,
and calls the ``pre_request``/``post_request`` server hooks with its own request and response
objects. This module builds look-alikes of those objects from the ASGI scope and the response
the cycle recorded, so every access-log atom and every hook sees what Gunicorn documents.

Nothing here runs unless someone will read it: ``build_bridge`` returns None when there is no
access log, no statsd (no logger class overriding ``access``), and neither hook differs from
Gunicorn's default. The server then never allocates a record, a request object or an environ.
This module never imports gunicorn: it looks at the cfg and logger objects by attribute.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from .wsgi import build_environ


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class GunicornRequest:
    """The request as Gunicorn's hooks see it (``gunicorn.http.message.Request``'s attributes).

    ``headers`` is a list of ``(NAME, value)`` str pairs with upper-cased names, as Gunicorn's
    parser makes them; ``version`` is a tuple; ``uri`` is the request target as sent.
    ``scope`` is the ASGI scope itself, for hooks that want more.
    """

    __slots__ = (
        "method", "uri", "path", "query", "fragment", "version", "headers", "trailers", "scheme",
        "remote_addr", "peer_addr", "body", "scope",
    )

    def __init__(self, scope: dict, target: bytes) -> None:
        self.scope = scope
        self.method = scope["method"]
        uri = target.decode("latin-1")
        self.uri = uri
        path, _, fragment = uri.partition("#")
        path, _, query = path.partition("?")
        if "://" in path:  # absolute-form: keep only the path
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        self.path = path
        self.query = query
        self.fragment = fragment
        major, _, minor = scope["http_version"].partition(".")
        self.version = (int(major), int(minor or 0))
        self.headers = [(n.decode("latin-1").upper(), v.decode("latin-1")) for n, v in scope["headers"]]
        self.trailers: list = []
        self.scheme = scope["scheme"]
        client = scope.get("client")
        self.remote_addr = tuple(client) if client else None
        self.peer_addr = self.remote_addr
        self.body = None

    def should_close(self) -> bool:
        for name, value in self.headers:
            if name == "CONNECTION":
                value = value.lower().strip()
                if value == "close":
                    return True
                if value == "keep-alive":
                    return False
        return self.version <= (1, 0)


class GunicornResponse:
    """The response as Gunicorn's ``log.access``, statsd and ``post_request`` read it.

    ``status`` is ``"200 OK"`` (Gunicorn's string form; ``status_code`` is the int), ``headers`` the
    app's headers as ``(name, value)`` str pairs, ``sent`` the body bytes written.
    """

    __slots__ = ("status", "status_code", "headers", "sent", "response_length", "chunked")

    def __init__(self, record: AccessRecord) -> None:
        code = record.status or 500
        self.status_code = code
        self.status = f"{code} {_phrase(code)}".rstrip()
        self.headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in record.headers]
        self.sent = record.sent
        self.response_length = None
        self.chunked = True
        for name, value in self.headers:
            if name.lower() == "content-length" and value.isdigit():
                self.response_length = int(value)
                self.chunked = False


class AccessRecord:
    """What one request's response did: kept on ``cycle.access`` only while someone logs it."""

    __slots__ = ("start", "target", "status", "headers", "sent", "request")

    def __init__(self, start: float, target: bytes) -> None:
        self.start = start
        self.target = target
        self.status = 0
        self.headers: Any = ()
        self.sent = 0
        self.request: GunicornRequest | None = None

    def response(self, status: int, headers: Any) -> None:
        """Called by the cycle at ``http.response.start``."""
        self.status = status
        self.headers = headers


class AccessBridge:
    """Per-request calls into Gunicorn: ``begin`` when a head arrives, ``finish`` when answered."""

    def __init__(self, worker: Any, log: Any, log_access: bool, pre_request: Any,
                 post_request: Any) -> None:
        self.worker = worker
        self.log = log
        self.time = time.monotonic  # not loop.time(): uvloop caches it per iteration
        self.log_access = log_access
        self.pre_request = pre_request
        self.post_request = post_request

    def begin(self, cycle: Any, target: bytes) -> None:
        record = cycle.access = AccessRecord(self.time(), target)
        hook = self.pre_request
        if hook is not None:
            request = record.request = GunicornRequest(cycle.scope, target)
            try:
                hook(self.worker, request)
            except Exception:
                self.log.exception("Exception in pre_request hook")

    def finish(self, cycle: Any) -> None:
        record = cycle.access
        if record is None:
            return
        cycle.access = None
        if not self.log_access and self.post_request is None:
            return  # only pre_request wanted this request
        elapsed = timedelta(seconds=self.time() - record.start)
        scope = cycle.scope
        request = record.request or GunicornRequest(scope, record.target)
        environ = build_environ(scope, None)
        environ["RAW_URI"] = request.uri
        response = GunicornResponse(record)
        if self.log_access:
            try:
                self.log.access(response, request, environ, elapsed)
            except Exception:
                self.log.exception("Error writing the access log")
        hook = self.post_request
        if hook is not None:
            try:
                hook(self.worker, request, environ, response)
            except Exception:
                self.log.exception("Exception in post_request hook")


def _custom_hook(cfg: Any, name: str) -> Any:
    """The hook ``name`` unless it is Gunicorn's default one, else None."""
    hook = getattr(cfg, name, None)
    settings = getattr(cfg, "settings", None)
    if isinstance(settings, dict) and name in settings and hook is settings[name].default:
        return None
    return hook


def build_bridge(worker: Any, cfg: Any, log: Any, log_access: bool) -> AccessBridge | None:
    """The bridge the server calls per request, or None when nobody would read its output.

    ``log_access``: whether ``log.access`` does anything (an access log is configured, or the
    logger class overrides ``access``, as Gunicorn's statsd logger does); the glue decides it.
    """
    pre = _custom_hook(cfg, "pre_request")
    if pre is None:
        # Gunicorn's default pre_request logs "METHOD path" at debug level: keep that, but only
        # pay for it when the error log shows debug.
        default = getattr(cfg, "pre_request", None)
        error_log = getattr(log, "error_log", None)
        if default is not None and error_log is not None and error_log.isEnabledFor(logging.DEBUG):
            pre = default
    post = _custom_hook(cfg, "post_request")
    if not log_access and pre is None and post is None:
        return None
    return AccessBridge(worker, log, log_access, pre, post)
