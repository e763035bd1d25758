"""App calls as asyncio Tasks: how a request's call is started, and how a drain finds the ones
still running.

The server owns neither list nor registry of them: a Task is made by the spawner chosen here
once per worker, and a drain (rare) looks the running ones up in the loop's tasks by the
coroutine they run, so a request pays nothing for being findable.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from typing import Any


@functools.cache
def _app_call_codes() -> frozenset:
    from .http.stream import HTTPStream
    from .ws.session import WebSocketSession

    return frozenset((HTTPStream.run.__code__, WebSocketSession.run_asgi.__code__))


def app_calls(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task]:
    """The app calls still running: Tasks running an HTTP stream's ``run`` or a WebSocket
    session's ``run_asgi``, whether or not their response is done or their client still there.

    Looked up when a drain asks (rarely), so a request pays nothing for it: no registry on the
    hot path. Tasks the app spawned itself are not app calls: they are not waited for.
    """
    codes = _app_call_codes()
    return [task for task in asyncio.all_tasks(loop)
            if getattr(task.get_coro(), "cr_code", None) in codes]


def task_factory(loop: asyncio.AbstractEventLoop, fresh_context: bool) -> Callable[[Any], Any]:
    """How a request's app call becomes a Task, decided once: in a fresh, empty context
    (``reset_contextvars``), started eagerly where asyncio can (3.12+: the app runs at once,
    a loop pass earlier), or a plain ``create_task``."""
    if fresh_context:
        import contextvars

        return lambda coro: loop.create_task(coro, context=contextvars.Context())
    if sys.version_info >= (3, 12):
        return functools.partial(asyncio.Task, loop=loop, eager_start=True)
    return loop.create_task
