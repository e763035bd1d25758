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

from gunicorn.glogging import Logger
from gunicorn.workers.base import Worker as _GunicornWorker

from .accesslog import build_bridge
from .apps import adapt
from .config import Config
from .errors import BOOT_ERROR, BootError, ConfigError
from .lifespan import Lifespan
from .server import Server, ServerState

# Seconds a quick exit (SIGINT/SIGQUIT) gives lifespan shutdown: the arbiter allows 2 s in all.
QUICK_LIFESPAN = 1.0


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def inherited_signals() -> list[int]:
    """Stopping signals the arbiter's handler, inherited by this fork, queued before ours.

    The handler is the arbiter's bound method; the queue is this process's copy of the
    arbiter's (a list up to Gunicorn 24, a SimpleQueue later).
    """
    arbiter = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    queued = getattr(arbiter, "SIG_QUEUE", None)
    found: list[int] = []
    if isinstance(queued, list):
        found, queued[:] = list(queued), []
    elif queued is not None and hasattr(queued, "get_nowait"):
        while True:
            try:
                found.append(queued.get_nowait())
            except Exception:  # queue.Empty
                break
    return [sig for sig in found if sig in STOP_SIGNALS]


def access_log_enabled(cfg: Any, log: Any) -> bool:
    """Whether Gunicorn's ``log.access`` does anything: an access log is configured, or the logger
    class overrides ``access`` (Gunicorn's statsd logger, a custom ``logger_class``)."""
    if type(log).access is not Logger.access:
        return True
    enabled = getattr(log, "access_log_enabled", None)  # Gunicorn 25+
    if enabled is not None:
        return bool(enabled)
    return bool(
        cfg.accesslog or cfg.logconfig or getattr(cfg, "logconfig_dict", None)
        or getattr(cfg, "logconfig_json", None)
        or (cfg.syslog and not cfg.disable_redirect_access_to_syslog)
    )


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


def ssl_context_for(cfg: Any, config: Config | None = None) -> ssl.SSLContext:
    """Gunicorn's TLS settings (and its ``ssl_context`` hook), offering in ALPN what this worker
    serves: ``http/1.1``, and ``h2`` first when ``http_protocols`` asks for it."""
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
    # Gunicorn 25+ puts h2 in ALPN by its own reading of http_protocols: set ours either way.
    if config is not None and "h2" in config.http_protocols:
        context.set_alpn_protocols([{"h1": "http/1.1", "h2": "h2"}[p] for p in config.http_protocols]
                                   + ([] if "h1" in config.http_protocols else ["http/1.1"]))
    else:
        context.set_alpn_protocols(["http/1.1"])
    return context


def _quiet(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """A loop exception handler that reports nothing (an aborting worker's abandoned Tasks)."""


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


def error_page_app(text: str) -> Any:
    """An ASGI app answering every HTTP request with 500 and ``text`` (the reload error page)."""
    body = text.encode("utf-8", "replace")
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", b"%d" % len(body))]

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class Worker(_GunicornWorker):
    """uvloop + httptools + websockets when installed; says so in one line when it falls back."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {}
    # Defaults of this class, below CONFIG_KWARGS.
    DEFAULTS: ClassVar[dict[str, Any]] = {"loop": "auto", "http": "auto", "ws": "auto"}

    config: Config
    loop: asyncio.AbstractEventLoop

    # ------------------------------------------------------------------ before run()
    def init_process(self) -> None:
        # Until init_signals, a signal would reach the arbiter's handler this fork inherited
        # and be lost (a TERM right after boot, as `docker stop` sends): hold the stopping
        # signals back, and take any the inherited handler already queued.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        self.early_signals = inherited_signals()
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
        self.server: Server | None = None
        self.load_failed = False
        self.aborting = False
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        # Plain handlers that hand the work to the loop, not loop.add_signal_handler: uvloop
        # only listens for signals while it runs, and a TERM during the app import or lifespan
        # startup (before the loop runs) would be lost. A stopping signal flips ``alive`` at
        # once, which the loop also checks before it serves.
        for sig, callback in (
            (signal.SIGTERM, self._on_term),
            (signal.SIGINT, self._on_quit),
            (signal.SIGQUIT, self._on_quit),
            (signal.SIGUSR1, self._on_usr1),
            (signal.SIGWINCH, self._on_winch),
        ):
            signal.signal(sig, self._to_loop(callback))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held ones arrive here now
        for sig in self.early_signals:
            signal.raise_signal(sig)
        # SIGABRT stays Gunicorn's real handler (``handle_abort``), run right in the signal:
        # it must act while the loop is blocked, which is exactly when the arbiter sends it.

    def _to_loop(self, callback: Any) -> Any:
        def handler(sig: int, frame: Any) -> None:
            if sig in STOP_SIGNALS:
                self.alive = False
            try:
                self.loop.call_soon_threadsafe(callback)
            except RuntimeError:
                pass  # the loop is closed: the worker is leaving anyway

        return handler

    def load_wsgi(self) -> None:
        """Gunicorn's, except that with ``--reload`` a SyntaxError in the app is served as a 500
        page naming it (Gunicorn 23's page leaves the error line out), until the next change
        restarts the worker; the broken file is watched like the others."""
        if self.cfg.reload:
            # A .pyc passes for fresh while the source keeps its size and its mtime's second:
            # an edit saved within the second of the last import would restart into old code.
            sys.dont_write_bytecode = True
        try:
            self.wsgi = self.app.wsgi()
        except SyntaxError as exc:
            if not self.cfg.reload:
                raise
            self.log.exception(exc)
            if self.reloader is not None and exc.filename is not None:
                self.reloader.add_extra_file(exc.filename)
            self.wsgi = error_page_app("".join(traceback.format_exception(exc)))
            self.load_failed = True

    def handle_abort(self, sig: int, frame: Any) -> None:
        """Heartbeat timeout: say where the loop is stuck, run ``worker_abort``, exit."""
        self.alive = False
        self.aborting = True
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)"
        self.log.critical("Worker timed out (pid: %s); the event loop was blocked here:\n%s",
                          os.getpid(), stack.rstrip())
        # The SystemExit below unwinds the stuck request's Task, whose stack was just logged:
        # asyncio must not report it again. An eagerly started Task (3.12+) that raises is
        # dropped during the unwinding, before run() returns, hence silence here, not later.
        self.loop.set_exception_handler(_quiet)
        try:
            self.cfg.worker_abort(self)
        finally:
            sys.exit(1)

    def _on_term(self) -> None:
        self.alive = False
        self._stop()

    def _on_quit(self) -> None:
        self.alive = False
        first = not self.quick_exit
        self.quick_exit = True
        if first:
            self.cfg.worker_int(self)
        if self.server is not None:
            self.server.hurry()
        self._stop()

    def _on_usr1(self) -> None:
        self.log.reopen_files()

    def _on_winch(self) -> None:
        self.log.debug("worker: SIGWINCH ignored.")

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
            self._close_loop()

    def _close_loop(self) -> None:
        loop = self.loop
        if loop.is_closed():
            return
        if self.aborting:
            # SystemExit from handle_abort unwound the stuck request: the stack is logged, the
            # hook ran. The process is leaving: neither run the loop again nor report the tasks
            # it leaves behind (the loop stays open and quiet, so they are dropped at exit).
            return
        try:
            if not loop.is_running():
                tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
                loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def _load_app(self) -> Any:
        if self.load_failed:
            self.interface = "wsgi"  # no lifespan for the error page
            return self.wsgi
        app, interface = adapt(self.wsgi, self.config.interface, self.log)
        self.interface = interface
        return app

    async def _serve(self) -> None:
        config = self.config
        cfg = self.cfg
        self.stopping = asyncio.Event()
        # the heartbeat runs from here: a lifespan startup that blocks the loop looks dead, one
        # that awaits does not; a reload or TERM during startup is seen once it completes
        self._watch_pipe()
        self._heartbeat()
        if not self.alive:
            return  # told to stop while the app was imported: nothing was started yet
        app = self._load_app()
        # Everything that can fail at boot is checked before the app's startup runs.
        ssl_context = None
        if cfg.is_ssl and config.proxy_protocol != "off":
            # the header comes before the TLS handshake, and asyncio's TLS transports cannot
            # be handed the bytes already read past it
            raise BootError("proxy_protocol cannot be used with TLS served by the worker "
                            "(keyfile/certfile): terminate TLS in the proxy in front")
        if cfg.is_ssl:
            try:
                ssl_context = ssl_context_for(cfg, config)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise BootError(f"cannot build the TLS context: {exc}") from None
        lifespan = Lifespan(app, config.lifespan if self.interface != "wsgi" else "off", self.log)
        access = build_bridge(self, cfg, self.log, access_log_enabled(cfg, self.log))
        server_cert = _first_pem(cfg.certfile) if ssl_context is not None else None
        state = ServerState(config, app, self.loop, self.log, lifespan.state, access, server_cert,
                            tls=ssl_context is not None)
        notes = self.fallback_notes + [n for n in (state.parser_note, state.ws_note) if n]
        if notes:
            self.log.info("gworkers: %s", "; ".join(notes))
        self.log.info(
            "gworkers: %s loop, %s parser, %s app",
            "uvloop" if type(self.loop).__module__.startswith("uvloop") else "asyncio",
            state.context.parser_class.__module__.rsplit(".", 1)[-1].removesuffix("_parser"),
            self.interface,
        )
        # the resolved settings, for an operator checking what CONFIG_KWARGS or the CLI did
        self.log.debug("gworkers: %r", config)
        await lifespan.startup()
        if self.max_requests and self.max_requests < sys.maxsize:
            state.context.calls.set_max_requests(self.max_requests, self._on_max_requests)
        state.set_max_connections(config.worker_connections)
        server = self.server = Server(state)
        await server.start(
            [getattr(s, "sock", s) for s in self.sockets], backlog=cfg.backlog, ssl_context=ssl_context
        )
        if self.alive:
            await self.stopping.wait()
        await self._shutdown(server, lifespan)

    async def _shutdown(self, server: Server, lifespan: Lifespan) -> None:
        """Drain inside ``graceful_timeout``, the arbiter's SIGKILL deadline counted from its TERM.

        Every way a worker stops (TERM, HUP, max_requests, reload, the master gone) comes here.
        The drain (listeners closed, then connections and app calls awaited) gets what is left
        after a reserve for lifespan shutdown and a margin for the ``worker_exit`` hook;
        lifespan shutdown runs after it and gets what the drain did not use. A quick exit
        (SIGINT/SIGQUIT) only leaves a moment for close frames, and a short lifespan shutdown.
        """
        loop = self.loop
        graceful = float(self.cfg.graceful_timeout)
        now = loop.time()
        deadline = now + graceful
        margin = min(max(graceful * 0.05, 0.2), 1.0)
        reserve = min(max(graceful * 0.15, 0.3), 5.0)
        if self.quick_exit:
            budget = 0.0
            deadline = min(deadline, now + QUICK_LIFESPAN + margin)
        else:
            budget = max(graceful - reserve - margin, 0.0)
        cut, cancelled = await server.shutdown(budget, quick=self.quick_exit)
        if (cut or cancelled) and self.quick_exit:
            self.log.info("gworkers: quick exit: %d connection(s) cut, %d app call(s) cancelled",
                          cut, cancelled)
        elif cut or cancelled:
            self.log.warning("gworkers: %d connection(s) cut and %d app call(s) cancelled at the "
                             "end of the graceful timeout (%.1f s to drain)", cut, cancelled,
                             budget)
        left = deadline - margin - loop.time()
        try:
            await asyncio.wait_for(lifespan.shutdown(), max(left, 0.1))
        except TimeoutError:
            self.log.warning("gworkers: lifespan shutdown did not finish in time")

    def _on_max_requests(self) -> None:
        self.log.info("Autorestarting worker after current request.")
        self.alive = False
        if self.server is not None:
            # stop accepting now, not when the drain closes the listeners a few loop passes
            # later: a client that connects right after the last response (seen on a loaded
            # box) is the next worker's, or max_requests would be exceeded
            self.server.stop_accepting()
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
