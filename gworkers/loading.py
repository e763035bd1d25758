"""Loading the app in each worker for ``gworkers.run()`` (the master never imports it).

A failure is one log line and exit code 3 (the arbiter halts); under ``--reload`` the error is
served as a 500 (``FailedApp``) until an edit fixes it, so the worker stays up to reload.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from .errors import BOOT_ERROR, BootError
from .lifespan import answer_lifespan


class FailedApp:
    """Served while ``--reload`` waits for a fix: 500 with the import error, any interface.

    Callable as ASGI3 (scope, receive, send), ASGI2 (scope) and WSGI (environ, start_response),
    so whatever ``--interface`` says, the worker stays up and says what went wrong.
    """

    def __init__(self, message: str) -> None:
        self.body = message.encode("utf-8", "replace")

    def __call__(self, *args: Any) -> Any:
        if len(args) == 2:  # WSGI
            args[1]("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8"),
                                                  ("Content-Length", str(len(self.body)))])
            return [self.body]
        if len(args) == 1:  # ASGI2
            scope = args[0]
            return lambda receive, send: self._asgi(scope, receive, send)
        return self._asgi(*args)

    async def _asgi(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            return await answer_lifespan(receive, send)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", b"%d" % len(self.body))]})
            await send({"type": "http.response.body", "body": self.body})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})


_OWN_DIR = os.path.dirname(os.path.abspath(__file__))  # gworkers itself


def app_traceback(exc: BaseException) -> str:
    """The traceback of an app's import error without the frames of importlib and gworkers."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(("<frozen", _OWN_DIR))
              and os.path.basename(os.path.dirname(f.filename)) != "importlib"]
    text = "".join(traceback.format_exception_only(type(exc), exc))
    if frames:
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + text
    return text


def load_app(app: Any, factory: bool, reload: bool) -> Any:
    """Runs in each worker (the master never imports the app): import, call the factory.

    Without --reload a failure is one log line and exit code 3 (the arbiter halts); with
    --reload the error is logged and served as a 500 until the next edit fixes it.
    """
    from .apps import import_from_string

    log = logging.getLogger("gunicorn.error")
    if reload:
        # A .pyc is trusted while the source keeps its size and its mtime's whole second: an
        # edit saved within the second of the last import (v1 -> v2) would load the old code.
        # Edited code is compiled fresh instead; the reload watcher ignores *.pyc anyway.
        sys.dont_write_bytecode = True
    try:
        if isinstance(app, str):
            return import_from_string(app, factory=factory)
        if factory:
            if not callable(app):
                raise BootError(f"factory {app!r} is not callable")
            return app()
        return app
    except BootError as exc:
        if reload:
            log.error("gworkers: %s (waiting for a change)", exc)
            return FailedApp(f"gworkers: {exc}\n")
        log.error("gworkers: %s", exc)
        sys.exit(BOOT_ERROR)
    except Exception as exc:  # noqa: BLE001 - the app's own import error is reported, not raised
        text = app_traceback(exc)
        if reload:
            log.error("gworkers: cannot load %r (waiting for a change):\n%s", app, text)
            return FailedApp(f"gworkers: cannot load {app!r}:\n{text}")
        log.error("gworkers: cannot load %r:\n%s", app, text)
        sys.exit(BOOT_ERROR)
