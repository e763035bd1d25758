"""ASGI lifespan: startup and shutdown, and the state dict copied into each request scope.

``auto`` runs it and carries on quietly when the app does not support it (it raises before
receiving, as ASGI allows); ``on`` treats that as a boot failure; ``off`` skips it. An app that
took the startup message and then raised does speak lifespan: that is a startup failure in
every mode. A
``lifespan.startup.failed`` message or an exception during startup is a boot failure: the
worker exits with code 3 so Gunicorn halts instead of respawning forever.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .errors import BootError


async def answer_lifespan(receive: Any, send: Any) -> None:
    """Lifespan for an app with nothing to start or stop (WSGI apps, error pages): say yes to
    both, so ``lifespan = on`` still boots and shutdown is not waited for."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class Lifespan:
    def __init__(self, app: Any, mode: str, log: Any) -> None:
        self.app = app
        self.mode = mode
        self.log = log
        self.state: dict = {}
        self.supported = mode != "off"
        self.receive_queue: asyncio.Queue = asyncio.Queue()
        self.startup_done: asyncio.Future | None = None
        self.shutdown_done: asyncio.Future | None = None
        self.task: asyncio.Task | None = None
        self.failed: str | None = None
        self.error: BaseException | None = None
        self.received = False  # the app took the startup message: it speaks lifespan

    async def startup(self) -> None:
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self.startup_done = loop.create_future()
        self.shutdown_done = loop.create_future()
        self.task = loop.create_task(self._run())
        await self.receive_queue.put({"type": "lifespan.startup"})
        await asyncio.wait([self.startup_done, self.task], return_when=asyncio.FIRST_COMPLETED)
        if self.failed is not None:
            raise BootError(f"lifespan startup failed: {self.failed}")
        if not self.startup_done.done():
            # the app returned or raised before answering startup
            if self.error is not None and (self.mode == "on" or self.received):
                raise BootError(f"lifespan startup failed: {self.error!r}")
            if self.mode == "on" and self.error is None:
                raise BootError("lifespan startup failed: app returned before startup completed")
            self.supported = False

    async def shutdown(self) -> None:
        if not self.supported or self.task is None:
            return
        await self.receive_queue.put({"type": "lifespan.shutdown"})
        await asyncio.wait([self.shutdown_done, self.task], return_when=asyncio.FIRST_COMPLETED)
        if self.failed is not None:
            self.log.error("Lifespan shutdown failed: %s", self.failed)

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as exc:  # noqa: BLE001 - the app's failure is reported, not raised
            self.error = exc
            if self.startup_done is not None and self.startup_done.done():
                self.log.error("Exception in lifespan after startup", exc_info=exc)
            elif self.mode == "on" or self.received:
                # it took the startup message, so it speaks lifespan: this is a real failure
                self.log.error("Exception in lifespan startup", exc_info=exc)
            else:
                self.log.info("ASGI 'lifespan' protocol appears unsupported.")
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise

    async def receive(self) -> dict:
        self.received = True
        return await self.receive_queue.get()

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.startup_done.set_result(None)
        elif kind == "lifespan.startup.failed":
            self.failed = message.get("message", "") or "(no message)"
            self.startup_done.set_result(None)
        elif kind == "lifespan.shutdown.complete":
            self.shutdown_done.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            self.failed = message.get("message", "") or "(no message)"
            self.shutdown_done.set_result(None)
        else:
            raise RuntimeError(f"unexpected lifespan message {kind!r}")
