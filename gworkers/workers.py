"""Gunicorn glue: ``Worker`` and ``H11Worker``. The first module that imports gunicorn.

Gunicorn owns the sockets, the fork, the master's signals and the heartbeat check; a worker
builds its Config after the fork, creates its event loop, serves Gunicorn's sockets and returns
normally when told to stop, so Gunicorn's ``worker_exit`` hook runs.

Exit codes the arbiter understands: 3 (boot error: bad CONFIG_KWARGS, TLS context, lifespan
startup) halts it instead of a respawn loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
import traceback
from typing import Any, ClassVar

from gunicorn.workers.base import Worker as _GunicornWorker

from .apps import adapt
from .config import Config
from .errors import BootError, ConfigError
from .lifespan import Lifespan
from .server import Server, ServerState

BOOT_ERROR = 3


def new_event_loop(kind: str) -> tuple[asyncio.AbstractEventLoop, str]:
    """The loop for ``loop = auto|uvloop|asyncio``, and a note when auto fell back."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise BootError("loop = uvloop, but uvloop is not installed") from None
            return asyncio.new_event_loop(), "uvloop is not installed: using asyncio"
        return uvloop.new_event_loop(), ""
    return asyncio.new_event_loop(), ""


def ssl_context_for(cfg: Any) -> ssl.SSLContext:
    """Gunicorn's TLS settings (and its ``ssl_context`` hook) as an HTTP/1.1-only context."""
    try:
        from gunicorn.sock import ssl_context as gunicorn_ssl_context
    except ImportError:  # pragma: no cover - Gunicorn without the helper
        gunicorn_ssl_context = None
    if gunicorn_ssl_context is not None:
        context = gunicorn_ssl_context(cfg)
    else:  # pragma: no cover
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cfg.ca_certs)
        context.load_cert_chain(certfile=cfg.certfile, keyfile=cfg.keyfile)
        context.verify_mode = cfg.cert_reqs
        if cfg.ciphers:
            context.set_ciphers(cfg.ciphers)
    # Gunicorn 25+ may offer h2 in ALPN; this worker speaks HTTP/1.1 only.
    context.set_alpn_protocols(["http/1.1"])
    return context


def _first_pem(path: str | None) -> str | None:
    """The server's own certificate (the first one in certfile), for the TLS extension."""
    if not path:
        return None
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    end_marker = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find(end_marker, start)
    if start < 0 or end < 0:
        return None
    return text[start : end + len(end_marker)] + "\n"


class Worker(_GunicornWorker):
    """uvloop + httptools + websockets when installed; says so in one line when it falls back."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {}
    # Defaults of this class, below CONFIG_KWARGS.
    DEFAULTS: ClassVar[dict[str, Any]] = {"loop": "auto", "http": "auto", "ws": "auto"}

    config: Config
    loop: asyncio.AbstractEventLoop

    # ------------------------------------------------------------------ before run()
    def init_process(self) -> None:
        try:
            self.config = Config.from_gunicorn(self.cfg, {**self.DEFAULTS, **self.CONFIG_KWARGS})
            self.loop, note = new_event_loop(self.config.loop)
        except (ConfigError, BootError) as exc:
            self.log.error("gworkers: cannot start worker: %s", exc)
            sys.exit(BOOT_ERROR)
        # Said once, with the parser's fallback, when serving starts.
        self.fallback_notes = [note] if note else []
        asyncio.set_event_loop(self.loop)
        self.stopping: asyncio.Event | None = None
        self.quick_exit = False
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        loop = self.loop
        # Handled on the loop: they only change what the loop does next.
        loop.add_signal_handler(signal.SIGTERM, self._on_term)
        loop.add_signal_handler(signal.SIGINT, self._on_quit)
        loop.add_signal_handler(signal.SIGQUIT, self._on_quit)
        loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        loop.add_signal_handler(signal.SIGWINCH, lambda: None)
        # SIGABRT stays a real signal handler (set by Gunicorn, overridden below): it must run
        # while the loop is blocked, which is exactly when the arbiter sends it.

    def handle_abort(self, sig: int, frame: Any) -> None:
        self.alive = False
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)"
        self.log.critical("Worker timed out (pid: %s); stuck here:\n%s", os.getpid(), stack)
        self.cfg.worker_abort(self)
        sys.exit(1)

    def _on_term(self) -> None:
        self.alive = False
        self._stop()

    def _on_quit(self) -> None:
        self.alive = False
        self.quick_exit = True
        self.cfg.worker_int(self)
        self._stop()

    def _stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()

    # ------------------------------------------------------------------ run()
    def run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        except BootError as exc:
            self.log.error("gworkers: %s", exc)
            sys.exit(BOOT_ERROR)
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self._release_signals()
                self.loop.close()

    def _release_signals(self) -> None:
        """Take the signals back from the loop before it closes its wake-up pipe.

        The arbiter repeats TERM while we leave: a signal landing between the pipe's close and
        the loop dropping its handlers would write to a closed fd, and the default action would
        kill the process before Gunicorn's ``worker_exit`` hook runs. We are exiting anyway.
        """
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
            try:
                self.loop.remove_signal_handler(sig)
            except (RuntimeError, ValueError):  # pragma: no cover - loop already closed
                pass
            signal.signal(sig, signal.SIG_IGN)
        try:
            self.loop.remove_signal_handler(signal.SIGWINCH)
        except (RuntimeError, ValueError):  # pragma: no cover
            pass

    def _load_app(self) -> Any:
        app, interface = adapt(self.wsgi, self.config.interface, self.log)
        self.interface = interface
        return app

    async def _serve(self) -> None:
        config = self.config
        cfg = self.cfg
        self.stopping = asyncio.Event()
        app = self._load_app()
        # Everything that can fail at boot is checked before the app's startup runs.
        ssl_context = None
        if cfg.is_ssl:
            try:
                ssl_context = ssl_context_for(cfg)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise BootError(f"cannot build the TLS context: {exc}") from None
        lifespan = Lifespan(app, config.lifespan if self.interface != "wsgi" else "off", self.log)
        state = ServerState(config, app, self.loop, self.log, lifespan.state)
        if ssl_context is not None:
            state.server_cert = _first_pem(cfg.certfile)
        notes = self.fallback_notes + [n for n in (state.parser_note, state.ws_note) if n]
        if notes:
            self.log.info("gworkers: %s", "; ".join(notes))
        self.log.info(
            "gworkers: %s loop, %s parser, %s app",
            "uvloop" if type(self.loop).__module__.startswith("uvloop") else "asyncio",
            state.parser_class.__module__.rsplit(".", 1)[-1].removesuffix("_impl"),
            self.interface,
        )
        await lifespan.startup()
        if self.max_requests and self.max_requests < sys.maxsize:
            state.max_requests = self.max_requests
            state.on_max_requests = self._on_max_requests
        self.state = state
        server = Server(state)
        await server.start(
            [getattr(s, "sock", s) for s in self.sockets], backlog=cfg.backlog, ssl_context=ssl_context
        )
        self._watch_pipe()
        self._heartbeat()
        await self.stopping.wait()
        # -- drain: finish in-flight requests inside graceful_timeout, leaving a reserve for
        # lifespan shutdown and the worker_exit hook before the arbiter's SIGKILL.
        graceful = float(cfg.graceful_timeout)
        reserve = min(max(graceful * 0.2, 0.5), 5.0)
        budget = 0.0 if self.quick_exit else max(graceful - reserve, 0.0)
        await server.shutdown(budget)
        try:
            await asyncio.wait_for(lifespan.shutdown(), max(reserve * 0.8, 0.1))
        except TimeoutError:
            self.log.warning("gworkers: lifespan shutdown did not finish in time")

    def _on_max_requests(self) -> None:
        self.log.info("Autorestarting worker after current request.")
        self.alive = False
        self._stop()

    def _heartbeat(self) -> None:
        """Notify the arbiter from the loop itself: a blocked loop stops the heartbeat."""
        self.notify()
        if not self.alive:
            self._stop()
        elif self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False
            self._stop()
        self.loop.call_later(min(self.timeout, 1.0) if self.timeout else 1.0, self._heartbeat)

    def _watch_pipe(self) -> None:
        """Gunicorn's reloader flips ``alive`` and writes to the worker's pipe: wake on it."""

        def readable() -> None:
            try:
                os.read(self.PIPE[0], 4096)
            except OSError:
                pass
            if not self.alive:
                self._stop()

        self.loop.add_reader(self.PIPE[0], readable)


class H11Worker(Worker):
    """The pure-Python twin: asyncio + h11 + wsproto (for PyPy, or without compiled extras)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"loop": "asyncio", "http": "h11", "ws": "wsproto"}
