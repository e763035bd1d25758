"""``gworkers.run()``: uvicorn-style options served by Gunicorn's own arbiter, in this process.

The options (the settings table in config.py) are split three ways:

* ``gunicorn`` scope -> Gunicorn settings (workers, backlog, max_requests, TLS files, ...);
* ``worker`` scope   -> the ``CONFIG_KWARGS`` of a worker class built here at run time;
* ``cli`` scope      -> handled here: the listening socket, env file, log config, reload, ...

Everything is validated before the arbiter starts, so a bad option is one line on stderr and
exit code 2, and a boot failure (port in use, missing module, unusable TLS files) exit code 3,
instead of Gunicorn's retry loops and tracebacks. The embedded arbiter reads nothing but what it
is given here: ``BaseApplication`` never looks at ``gunicorn.conf.py`` or ``GUNICORN_CMD_ARGS``,
and Gunicorn 25.1+'s control socket is turned off.

The socket is bound by ``listen.py``, a ``--log-config`` read by ``runlogging.py``, and the app
loaded in each worker by ``loading.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._version import PROG, __version__
from .config import SETTINGS, env_default
from .errors import BOOT_ERROR, USAGE_ERROR, BootError, ConfigError
from .listen import bind_socket, fd_listeners
from .loading import load_app
from .runlogging import apply_log_config, logger_class, read_log_config


def version_line() -> str:
    import platform

    from gunicorn import __version__ as gunicorn_version  # the package root reads no settings

    return (f"gworkers {__version__} with gunicorn {gunicorn_version}, "
            f"Python {platform.python_version()} ({platform.python_implementation()}) "
            f"on {platform.system()}")


# --------------------------------------------------------------------------- options


def resolve(options: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting's value: given, else its environment variable, else the table default."""
    unknown = sorted(set(options) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}")
    values = {}
    for name, setting in SETTINGS.items():
        if name in options:
            values[name] = setting.validate(options[name])
        else:
            try:
                values[name] = setting.validate(env_default(setting))
            except ConfigError as exc:
                raise ConfigError(f"${setting.env}: {str(exc).split(': ', 1)[1]}") from None
    return values


def _need_file(values: dict[str, Any], name: str) -> None:
    path = values[name]
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"{name}: no such file {path!r}")


def load_env_file(path: str) -> None:
    try:
        from dotenv import load_dotenv
    except ImportError:
        raise ConfigError("env_file: python-dotenv is not installed") from None
    load_dotenv(path)


def build_ssl_context(values: Mapping[str, Any]) -> ssl.SSLContext:
    """The server TLS context, uvicorn's way: protocol, chain (+ key password), client certs."""
    context = ssl.SSLContext(values["ssl_version"])
    password = values["ssl_keyfile_password"]
    # Without a password, answer OpenSSL's prompt with nothing rather than block on the tty.
    context.load_cert_chain(values["ssl_certfile"], values["ssl_keyfile"],
                            password=password if password is not None else (lambda: b""))
    context.verify_mode = ssl.VerifyMode(values["ssl_cert_reqs"])
    if values["ssl_ca_certs"]:
        context.load_verify_locations(values["ssl_ca_certs"])
    if values["ssl_ciphers"]:
        context.set_ciphers(values["ssl_ciphers"])
    return context


def check_app_spec(spec: str) -> None:
    """``module:attr`` well formed and the top-level package findable, without importing it.

    The master must not import the app (each worker imports it, so a reload sees new code);
    ``find_spec`` on the top-level name locates it without running anything.
    """
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f'app {spec!r} must be "<module>:<attribute>"')
    top = module.split(".", 1)[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise BootError(f"could not import module {module!r}")


# --------------------------------------------------------------------------- the application


def build_worker_class(base: type, kwargs: Mapping[str, Any]) -> type:
    """A subclass of ``base`` carrying ``kwargs`` in CONFIG_KWARGS (fork takes it to workers)."""
    merged = {**getattr(base, "CONFIG_KWARGS", {}), **kwargs}
    # Gunicorn logs "Using worker: <__name__>": name the base class in full.
    name = f"{base.__module__}.{base.__qualname__}"
    return type(name, (base,), {"CONFIG_KWARGS": merged, "__module__": base.__module__,
                                "__qualname__": name})


def embedded_application(settings: Mapping[str, Any], app: Any, factory: bool,
                         reload: bool) -> Any:
    """Gunicorn's application object for run(): settings from a dict, the app from ``load``.

    Gunicorn is imported here, not at module import: it reads $WEB_CONCURRENCY when its config
    module loads, and a bad value must be our one-line error, not its traceback.
    """
    from gunicorn.app.base import BaseApplication

    class EmbeddedApplication(BaseApplication):
        def do_load_config(self) -> None:
            # Gunicorn's version prints a blank line and exits 1; the options were checked
            # already, so a failure here is one line and a usage error.
            try:
                self.load_default_config()
                self.load_config()
                if hasattr(self.cfg, "validate"):
                    self.cfg.validate()
            except Exception as exc:  # noqa: BLE001
                print(f"{PROG}: error: {exc}", file=sys.stderr)
                sys.exit(USAGE_ERROR)

        def load_config(self) -> None:
            known = self.cfg.settings
            for name, value in settings.items():
                if name in known:  # only what this Gunicorn has (23 lacks the control socket)
                    self.cfg.set(name, value)

        def load(self) -> Any:
            return load_app(app, factory, reload)

        def run(self) -> None:
            from gunicorn.arbiter import Arbiter
            from gunicorn.errors import HaltServer

            arbiter = Arbiter(self)
            arbiter.LISTENERS = fd_listeners(arbiter.cfg, arbiter.log)
            try:
                arbiter.run()
            except HaltServer as exc:
                # Gunicorn raises HaltServer again from halt() when a second worker fails to
                # boot while the first failure is handled; each retry reaps one more worker.
                for _ in range(len(arbiter.WORKERS) + 2):
                    try:
                        arbiter.halt(reason=exc.reason, exit_status=exc.exit_status)
                    except HaltServer as again:
                        exc = again
                sys.exit(exc.exit_status)
            except RuntimeError as exc:
                print(f"{PROG}: error: {exc}", file=sys.stderr)
                sys.exit(BOOT_ERROR)

    return EmbeddedApplication(usage=None, prog=PROG)


def _gunicorn_settings(values: dict[str, Any], fd: int, worker_class: type,
                       app_name: str) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "bind": [f"fd://{fd}"],
        "worker_class": worker_class,
        "workers": values["workers"],
        "backlog": values["backlog"],
        "max_requests": values["limit_max_requests"] or 0,
        "max_requests_jitter": values["limit_max_requests_jitter"],
        "timeout": values["timeout_worker_healthcheck"],
        "accesslog": "-" if values["access_log"] else None,
        "errorlog": "-",
        "loglevel": "debug" if values["log_level"] == "trace" else values["log_level"],
        "preload_app": False,
        "reload": False,
        "default_proc_name": app_name,
        "control_socket_disable": True,
    }
    if values["timeout_graceful_shutdown"] is not None:
        settings["graceful_timeout"] = values["timeout_graceful_shutdown"]
    if values["ssl_certfile"]:
        tls = {k: values[k] for k in ("ssl_version", "ssl_certfile", "ssl_keyfile",
                                      "ssl_keyfile_password", "ssl_cert_reqs", "ssl_ca_certs",
                                      "ssl_ciphers")}

        def ssl_context(config: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
            return build_ssl_context(tls)

        settings.update(certfile=values["ssl_certfile"], keyfile=values["ssl_keyfile"],
                        cert_reqs=values["ssl_cert_reqs"], ca_certs=values["ssl_ca_certs"],
                        ciphers=values["ssl_ciphers"], ssl_context=ssl_context)
    log_config = read_log_config(values["log_config"]) if values["log_config"] else None
    colors = values["use_colors"]
    if colors is None:
        colors = sys.stderr.isatty()
    if log_config is not None or colors:
        settings["logger_class"] = logger_class(colors, log_config)
    return settings


def prepare(app: Any, options: Mapping[str, Any]) -> tuple[Any, Any]:
    """Validate everything, bind the socket, and build the Gunicorn application.

    Raises ConfigError (usage, exit 2) or BootError (cannot start, exit 3).
    """
    options = dict(options)
    base = options.pop("worker_class", None)
    if options.get("env_file") is not None:
        env_file = SETTINGS["env_file"].validate(options["env_file"])
        if not os.path.isfile(env_file):
            raise ConfigError(f"env_file: no such file {env_file!r}")
        load_env_file(env_file)  # before the environment defaults are read
    values = resolve(options)
    base = _worker_base(base)
    check_options(app, values)
    app_dir = os.path.abspath(values["app_dir"] or ".")
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    if isinstance(app, str):
        check_app_spec(app)
    if values["ssl_certfile"]:
        try:
            build_ssl_context(values)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise BootError(f"cannot load the TLS certificate/key: {exc}") from None
    # Worker settings of the command line travel in CONFIG_KWARGS; a default the base class
    # sets itself (H11Worker's loop/http/ws) is kept unless the option was given.
    class_defaults = getattr(base, "DEFAULTS", {})
    worker_kwargs = {name: values[name] for name, s in SETTINGS.items()
                     if s.scope == "worker"
                     and (name in options or (s.flags and name not in class_defaults))}
    if values["http2"]:
        # uvicorn's switch: ALPN h2 with TLS; without, h2c by prior knowledge and by Upgrade
        worker_kwargs.setdefault("http_protocols", ("h2", "h1"))
        if not values["ssl_certfile"]:
            worker_kwargs.setdefault("http2_cleartext", "both")
    worker_class = build_worker_class(base, worker_kwargs)
    return _application(app, values, worker_class)


def _worker_base(base: Any) -> type:
    """The worker class to build on: ``gworkers.Worker`` or a subclass, maybe by name."""
    # Gunicorn is imported only now, once $WEB_CONCURRENCY is known to be a number.
    from .workers import Worker

    if base is None:
        base = Worker
    elif isinstance(base, str):
        base = _import_dotted(base.replace(":", "."))
    if not (isinstance(base, type) and issubclass(base, Worker)):
        raise ConfigError(f"worker_class: {base!r} is not a gworkers worker class")
    return base


def check_options(app: Any, values: Mapping[str, Any]) -> None:
    """The options that cannot go together or name files and directories that are missing,
    and a ``--log-config`` that logging rejects: usage errors (exit 2), before anything runs."""
    if values["http2"] or "h2" in values["http_protocols"]:
        _need_h2()
    if values["uds"] is not None and values["fd"] is not None:
        raise ConfigError("uds and fd cannot be used together: pick one socket")
    if not isinstance(app, str):
        if values["workers"] > 1 or values["reload"]:
            what = "reload" if values["reload"] else f"workers={values['workers']}"
            raise ConfigError(f"{what} needs the app as an import string like 'main:app', "
                              "not an app object")
        if not callable(app):
            raise ConfigError(f"app {app!r} is neither an import string nor a callable")
    for name in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
        _need_file(values, name)
    if isinstance(values["log_config"], str):
        _need_file(values, "log_config")
    if values["log_config"]:
        try:  # once here, so a config logging rejects is a usage error, not a boot crash
            apply_log_config(read_log_config(values["log_config"]))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - logging raises many types
            where = values["log_config"] if isinstance(values["log_config"], str) else "the mapping"
            raise ConfigError(f"log_config: {where!r} is rejected: {exc}") from None
    for directory in values["reload_dirs"]:
        if not os.path.isdir(directory):
            raise ConfigError(f"reload_dir: no such directory {directory!r}")
    if values["ssl_keyfile"] and not values["ssl_certfile"]:
        raise ConfigError("ssl_keyfile needs ssl_certfile")


def _application(app: Any, values: dict[str, Any], worker_class: type) -> tuple[Any, Any]:
    """Bind the socket and build the Gunicorn application (and the reloader) around it; the
    socket is closed again (and a unix socket's path removed) if that fails."""
    app_name = app if isinstance(app, str) else getattr(app, "__name__", type(app).__name__)
    fd, _ = bind_socket(values)
    try:
        settings = _gunicorn_settings(values, fd, worker_class, app_name)
        reloader = None
        if values["reload"]:
            reloader = _make_reloader(values)
            settings["when_ready"] = lambda arbiter: _start_reloader(reloader, arbiter)
        application = embedded_application(settings, app, values["factory"], values["reload"])
    except BaseException:
        os.close(fd)
        if values["uds"] is not None and values["fd"] is None:
            with contextlib.suppress(OSError):
                os.unlink(values["uds"])
        raise
    return application, reloader


def _need_h2() -> None:
    try:
        import h2  # noqa: F401  (Gunicorn 25+ checks for it)
        import hpack  # noqa: F401  (http/h2/ uses its tables)
    except ImportError:
        raise ConfigError("http2: the http2 extra (hpack, h2) is not installed "
                          "(pip install 'gworkers[http2]')") from None


def _import_dotted(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    if not module:
        raise ConfigError(f"worker_class: {path!r} is not 'module.Class'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        raise ConfigError(f"worker_class: cannot import {path!r}") from None


def _make_reloader(values: Mapping[str, Any]) -> Any:
    from .reload import Reloader

    log = logging.getLogger("gunicorn.error")

    def changed(paths: list[Path]) -> None:
        shown = ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        log.info("gworkers: %s changed, reloading", shown or "a watched file")
        os.kill(os.getpid(), signal.SIGHUP)

    reloader = Reloader(values["reload_dirs"], values["reload_includes"],
                        values["reload_excludes"], values["reload_delay"], changed)
    return reloader


def _start_reloader(reloader: Any, arbiter: Any) -> None:
    """Gunicorn's ``when_ready`` hook: the master's logging is set up, workers not yet forked.

    The line is logged once the watcher sees edits, so an edit made after it always reloads.
    """
    dirs = ", ".join(str(d) for d in reloader.dirs)
    if reloader.start():
        arbiter.log.info("gworkers: watching %s for changes (%s, delay %ss)",
                         dirs, reloader.engine, reloader.delay)
    elif reloader.error is None:
        arbiter.log.warning("gworkers: still setting up the watcher of %s (%s): edits made "
                            "meanwhile are missed", dirs, reloader.engine)


def fail(code: int, message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.stderr.flush()
    raise SystemExit(code)


def run(app: Any, **config: Any) -> None:
    """Serve ``app`` ("module:attr" or an app object) with uvicorn's options, under Gunicorn.

    Keyword arguments are the settings of ``gworkers.config.SETTINGS`` (uvicorn's names), plus
    ``worker_class`` (``gworkers.Worker`` by default, or ``gworkers.H11Worker`` or a subclass).
    Returns when the server stops normally; exits 2 on bad options and 3 when it cannot start.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        # SystemExit would end only this thread: raise something the caller sees.
        raise RuntimeError("gworkers.run() must be called from the main thread "
                           "(Gunicorn's arbiter installs signal handlers)")
    try:
        application, reloader = prepare(app, config)
    except ConfigError as exc:
        fail(USAGE_ERROR, str(exc))
    except BootError as exc:
        fail(BOOT_ERROR, str(exc))
    master = os.getpid()
    try:
        application.run()
    except SystemExit as exc:
        # A worker leaves through SystemExit too: it must exit, never return into the caller.
        if os.getpid() != master or exc.code not in (0, None):
            raise
    finally:
        if reloader is not None and os.getpid() == master:
            reloader.stop()
