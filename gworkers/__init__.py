"""gworkers: a fast, correct ASGI/WSGI worker for Gunicorn.

    gunicorn -k gworkers.Worker app:app       # uvloop + httptools + websockets
    gunicorn -k gworkers.H11Worker app:app    # asyncio + h11 + wsproto
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["Config", "H11Worker", "Worker", "__version__", "run"]

if TYPE_CHECKING:
    from .config import Config
    from .embed import run
    from .workers import H11Worker, Worker


def __getattr__(name: str) -> Any:
    # Lazy: importing gworkers.config must not pull in gunicorn or the event loop.
    if name in ("Worker", "H11Worker"):
        from . import workers

        return getattr(workers, name)
    if name == "Config":
        from .config import Config

        return Config
    if name == "run":
        from .embed import run

        return run
    raise AttributeError(f"module 'gworkers' has no attribute {name!r}")
