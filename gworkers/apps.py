"""Load an application and adapt it to ASGI3.

``interface = auto`` looks at the callable: a coroutine function taking (scope, receive, send)
is ASGI3; a callable taking one argument that returns a coroutine function is ASGI2; a callable
taking (environ, start_response) is WSGI.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

from .errors import BootError


def import_from_string(spec: str, factory: bool = False, app_dir: str | None = None) -> Any:
    """``"module:attr"`` (``attr`` may be dotted) -> object; a factory is called once."""
    if app_dir is not None and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BootError(f'app {spec!r} must be "<module>:<attribute>"')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name and not module_name.startswith(f"{exc.name}."):
            raise
        raise BootError(f"could not import module {module_name!r}") from None
    obj: Any = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise BootError(f"attribute {attr!r} not found in module {module_name!r}") from None
    if factory:
        if not callable(obj):
            raise BootError(f"factory {spec!r} is not callable")
        obj = obj()
    return obj


def _is_coroutine_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - classes with async __call__
    return inspect.iscoroutinefunction(call)


def detect_interface(app: Any) -> str:
    if inspect.isclass(app):
        # class-based ASGI2: instantiated with the scope, the instance is awaited
        call = getattr(app, "__call__", None)  # noqa: B004
        if call is not None and inspect.iscoroutinefunction(call):
            return "asgi2"
        return "asgi3" if _is_coroutine_callable(app) else "asgi2"
    if _is_coroutine_callable(app):
        return "asgi3"
    try:
        params = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return "asgi3"
    if len(params) == 2:
        return "wsgi"
    if len(params) == 1:
        return "asgi2"
    return "asgi3"


class ASGI2Middleware:
    """Runs an ASGI2 (double-callable) app as ASGI3."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def adapt(app: Any, interface: str, log: Any = None) -> tuple[Any, str]:
    """The ASGI3 callable to serve, and the interface that was used."""
    if interface == "auto":
        interface = detect_interface(app)
    if interface == "asgi2":
        return ASGI2Middleware(app), interface
    if interface == "wsgi":
        from .wsgi import WSGIMiddleware

        return WSGIMiddleware(app), interface
    return app, interface
