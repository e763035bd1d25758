"""THE settings table, and the immutable ``Config`` a worker serves with.

Every setting is declared once here: its name, converter, default, help, command-line flags and,
where Gunicorn already has the setting, the name of Gunicorn's. The worker builds its Config from
Gunicorn's ``cfg`` plus the worker class's ``CONFIG_KWARGS``; ``gworkers-run`` generates its
argument parser and ``run()`` its keyword arguments from the same table.

Scopes:

* ``worker``   -- lives in ``Config``; may come from ``CONFIG_KWARGS`` and, when the setting names a
                  Gunicorn setting, from Gunicorn's cfg (``CONFIG_KWARGS`` > Gunicorn > default).
* ``gunicorn`` -- a command-line option that *is* a Gunicorn setting (workers, backlog, ...); the
                  CLI hands it to Gunicorn and the worker reads it back from cfg.
* ``cli``      -- used by the command line / ``run()`` only (host, port, reload, ...).

This module never imports gunicorn: it reads the cfg object by attribute.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

Converter = Callable[[Any], Any]


# --------------------------------------------------------------------------- converters
# Each takes a Python value (CONFIG_KWARGS, run()) or a string (command line, environment) and
# returns the normalised value or raises ValueError with a short reason.

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected a boolean, got {value!r}")


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        try:
            result = int(value.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    else:
        raise ValueError(f"expected an integer, got {value!r}")
    if result < 0:
        raise ValueError(f"must not be negative, got {result}")
    return result


def to_pos_int(value: Any) -> int:
    result = to_int(value)
    if result < 1:
        raise ValueError(f"must be at least 1, got {result}")
    return result


def to_port(value: Any) -> int:
    result = to_int(value)
    if result > 65535:
        raise ValueError(f"must be a port number 0-65535, got {result}")
    return result


def to_opt_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return to_int(value)


def to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if result < 0 or result != result:
        raise ValueError(f"must be a non-negative number, got {value!r}")
    return result


def to_opt_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return to_float(value)


def to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def to_opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return to_str(value)


def to_opt_bool(value: Any) -> bool | None:
    if value is None:
        return None
    return to_bool(value)


def to_opt_path(value: Any) -> str | None:
    """A file-system path: a string or an ``os.PathLike`` (run() callers pass ``Path``)."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a path, got {value!r}")
    return value


def to_log_config(value: Any) -> Any:
    """A logging config file path, or (from run()) a dictConfig mapping, as uvicorn accepts."""
    if isinstance(value, Mapping):
        return dict(value)
    return to_opt_path(value)


LOG_LEVELS = {"critical": 50, "error": 40, "warning": 30, "info": 20, "debug": 10, "trace": 5}


def to_log_level(value: Any) -> str:
    """A level name, or (from run()) a ``logging`` level number."""
    if isinstance(value, int) and not isinstance(value, bool):
        for name, number in LOG_LEVELS.items():
            if value >= number:
                return name
        return "trace"
    if isinstance(value, str) and value.lower() in LOG_LEVELS:
        return value.lower()
    raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")


to_log_level.choices = tuple(LOG_LEVELS)  # type: ignore[attr-defined]


def to_str_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        items = tuple(value)
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"expected strings, got {item!r}")
        return items
    raise ValueError(f"expected a list of strings, got {value!r}")


def choice(*choices: str) -> Converter:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    convert.choices = choices  # type: ignore[attr-defined]
    return convert


def choice_int(*choices: int) -> Converter:
    def convert(value: Any) -> int:
        result = to_int(value)
        if result not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}, got {value!r}")
        return result

    return convert


def to_http_protocols(value: Any) -> tuple[str, ...]:
    """Gunicorn's ``http_protocols``: ``"h2,h1"`` or a list; order is the ALPN preference."""
    if value is None or value == "":
        return ("h1",)
    items = value.split(",") if isinstance(value, str) else to_str_list(value)
    protocols = tuple(p.strip().lower() for p in items if p.strip())
    for proto in protocols:
        if proto not in ("h1", "h2"):
            raise ValueError(f"expected h1 and/or h2, got {proto!r}")
    if len(set(protocols)) != len(protocols):
        raise ValueError(f"a protocol is named twice in {value!r}")
    return protocols or ("h1",)


def bounded_int(low: int, high: int) -> Converter:
    """An integer within ``[low, high]`` (HTTP/2 settings have protocol bounds, RFC 9113 6.5.2)."""

    def convert(value: Any) -> int:
        result = to_int(value)
        if not low <= result <= high:
            raise ValueError(f"must be between {low} and {high}, got {result}")
        return result

    return convert


def _token_ok(name: bytes) -> bool:
    return bool(name) and all(c in _TCHAR for c in name)


_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def to_headers(value: Any) -> tuple[tuple[bytes, bytes], ...]:
    """Extra default response headers: ``"Name: value"`` strings or ``(name, value)`` pairs."""
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        value = [value]
    result = []
    for item in value:
        if isinstance(item, str):
            name, sep, val = item.partition(":")
            if not sep:
                raise ValueError(f"header {item!r} is not 'Name: value'")
            pair = (name.strip(), val.strip())
        elif isinstance(item, tuple | list) and len(item) == 2:
            pair = tuple(item)
        else:
            raise ValueError(f"header {item!r} is not 'Name: value' or a (name, value) pair")
        name_b = pair[0].encode("latin-1") if isinstance(pair[0], str) else bytes(pair[0])
        val_b = pair[1].encode("latin-1") if isinstance(pair[1], str) else bytes(pair[1])
        if not _token_ok(name_b):
            raise ValueError(f"header name {pair[0]!r} is not a valid token")
        if b"\r" in val_b or b"\n" in val_b or b"\0" in val_b:
            raise ValueError(f"header value for {pair[0]!r} contains CR, LF or NUL")
        result.append((name_b.lower(), val_b))
    return tuple(result)


def to_ip_list(value: Any) -> tuple[str, ...]:
    """Trusted proxy addresses: ``"a,b"``, a list, networks, or ``*``.

    Gunicorn 24.1 briefly handed out network objects; strings, lists and networks are all read.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, Iterable):
        items = [str(v).strip() for v in value]
    else:
        items = [str(value)]
    out = []
    for item in items:
        if not item:
            continue
        if item != "*" and not item.startswith("unix:"):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address, network or '*'") from None
        out.append(item)
    return tuple(out)


_PROXY_PROTOCOL = {"off": "off", "false": "off", "0": "off", "none": "off", "no": "off",
                   "auto": "auto", "true": "auto", "1": "auto", "on": "auto", "yes": "auto",
                   "v1": "v1", "v2": "v2"}


def to_proxy_protocol(value: Any) -> str:
    """Gunicorn's ``proxy_protocol``: a bool up to Gunicorn 24.0, off|v1|v2|auto since 24.1."""
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "auto" if value else "off"
    if isinstance(value, str) and value.strip().lower() in _PROXY_PROTOCOL:
        return _PROXY_PROTOCOL[value.strip().lower()]
    raise ValueError(f"expected one of off, v1, v2, auto (or a boolean), got {value!r}")


to_proxy_protocol.choices = ("off", "v1", "v2", "auto")  # type: ignore[attr-defined]


FORWARDED_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                     "x-forwarded-port", "x-forwarded-prefix", "forwarded")


def to_forwarded_headers(value: Any) -> tuple[str, ...]:
    """Which proxy headers a trusted peer may set: a comma list or a list of header names."""
    if isinstance(value, str):
        value = value.split(",")
    names = tuple(n.strip().lower() for n in to_str_list(value) if n.strip())
    for name in names:
        if name not in FORWARDED_HEADERS:
            raise ValueError(f"{name!r} is not one of {', '.join(FORWARDED_HEADERS)}")
    return names


def to_scheme_headers(value: Any) -> tuple[tuple[bytes, bytes], ...]:
    """Gunicorn's ``secure_scheme_headers``: header -> value that means https."""
    if not value:
        return ()
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of header to value, got {value!r}")
    return tuple(
        (str(k).lower().encode("latin-1"), str(v).lower().encode("latin-1"))
        for k, v in value.items()
    )


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    convert: Converter
    default: Any
    help: str
    scope: str = "worker"  # worker | gunicorn | cli
    flags: tuple[str, ...] = ()  # command-line flags; () = not on the command line
    gunicorn: str | None = None  # Gunicorn setting this is read from / mapped to
    action: str = "store"  # store | bool (--x/--no-x) | append | store_true
    metavar: str | None = None
    env: str | None = None  # environment variable read by the command line

    @property
    def choices(self) -> tuple[str, ...] | None:
        return getattr(self.convert, "choices", None)

    def validate(self, value: Any) -> Any:
        try:
            return self.convert(value)
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None


S = Setting
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        # --- implementations
        S("loop", choice("auto", "asyncio", "uvloop"), "auto",
          "Event loop: uvloop when installed (auto), or asyncio.", flags=("--loop",)),
        S("http", choice("auto", "httptools", "h11"), "auto",
          "HTTP/1.1 parser: httptools when installed (auto), or h11.", flags=("--http",)),
        S("ws", choice("auto", "websockets", "wsproto", "none"), "auto",
          "WebSocket engine: websockets when installed (auto), wsproto, or none.",
          flags=("--ws",)),
        S("lifespan", choice("auto", "on", "off"), "auto",
          "Lifespan protocol: auto runs it and carries on if the app does not support it.",
          flags=("--lifespan",)),
        S("interface", choice("auto", "asgi3", "asgi2", "wsgi"), "auto",
          "Application interface; auto detects it.", flags=("--interface",)),
        # --- request and response
        S("root_path", to_str, "",
          "ASGI root_path: the prefix the app is mounted under (Gunicorn 25+'s root_path).",
          flags=("--root-path",), gunicorn="root_path"),
        S("server_header", to_bool, True, "Send a 'server: gworkers' header.",
          flags=("--server-header",), action="bool"),
        S("date_header", to_bool, True, "Send a 'date' header.",
          flags=("--date-header",), action="bool"),
        S("headers", to_headers, (), "Extra default response header 'Name:Value' (repeatable).",
          flags=("--header",), action="append", metavar="NAME:VALUE"),
        S("reset_contextvars", to_bool, False,
          "Run each request in a fresh contextvars context.",
          flags=("--reset-contextvars",), action="store_true"),
        # --- limits
        S("limit_request_line", to_int, 4094,
          "Longest request line in bytes (414 past it); 0 = unlimited.",
          gunicorn="limit_request_line"),
        S("limit_request_fields", to_int, 100,
          "Most header fields in a request (431 past it); 0 = unlimited.",
          gunicorn="limit_request_fields"),
        S("limit_request_field_size", to_int, 8190,
          "Longest header field in bytes (431 past it); 0 = unlimited.",
          gunicorn="limit_request_field_size"),
        S("limit_request_body", to_int, 0,
          "Largest request body in bytes (413 past it); 0 = unlimited.",
          flags=("--limit-request-body",)),
        S("worker_connections", to_int, 1000,
          "Open connections per worker (Gunicorn's worker_connections): at the cap the oldest "
          "idle one is closed for a new one; with all busy the worker stops accepting and the "
          "rest wait in the backlog for a sibling. 0 = no cap.",
          flags=("--worker-connections",), gunicorn="worker_connections"),
        S("limit_concurrency", to_opt_int, None,
          "App calls in progress per worker past which a request gets 503; 0/None = no cap.",
          flags=("--limit-concurrency",)),
        S("h11_max_incomplete_event_size", to_int, 16 * 1024,
          "h11: most bytes buffered while waiting for a complete request head.",
          flags=("--h11-max-incomplete-event-size",)),
        # --- HTTP/2 (http/h2/, the gworkers[http2] extra; Gunicorn 25+/26.2+ names)
        S("http_protocols", to_http_protocols, ("h1",),
          "Protocols served, in ALPN preference order: h1, h2 or both ('h2,h1'); h2 needs "
          "gworkers[http2]. With TLS, h2 is offered in ALPN; without, see http2_cleartext.",
          gunicorn="http_protocols"),
        S("http2_cleartext", choice("off", "prior-knowledge", "upgrade", "both"), "off",
          "Cleartext HTTP/2 (h2c) when http_protocols has h2: by the client preface on a new "
          "connection, by 'Upgrade: h2c', or both; HTTP/1.1 is served on the same port.",
          gunicorn="http2_cleartext"),
        S("http2_max_concurrent_streams", bounded_int(1, 2**31 - 1), 100,
          "Streams (app calls) one HTTP/2 connection may run at once; more are refused "
          "(REFUSED_STREAM).", gunicorn="http2_max_concurrent_streams"),
        S("http2_initial_window_size", bounded_int(1, 2**31 - 1), 65535,
          "Request-body bytes a stream may send before the app reads them (flow control).",
          gunicorn="http2_initial_window_size"),
        S("http2_max_frame_size", bounded_int(16384, 16777215), 16384,
          "Largest HTTP/2 frame payload accepted.", gunicorn="http2_max_frame_size"),
        S("http2_max_header_list_size", bounded_int(1, 2**31 - 1), 65536,
          "Largest decoded request header block (RFC 9113 6.5.2); past it the connection "
          "is closed (GOAWAY).", gunicorn="http2_max_header_list_size"),
        # --- timeouts
        S("timeout_keep_alive", to_float, 5.0,
          "Close a keep-alive connection idle this many seconds (Gunicorn's keepalive); 0 = one "
          "request per connection.",
          flags=("--timeout-keep-alive",), gunicorn="keepalive"),
        S("timeout_request_header", to_float, 30.0,
          "Seconds to receive a complete request head (from accept, or from its first byte on a "
          "kept-alive connection); 0 = off.",
          flags=("--timeout-request-header",)),
        S("timeout_request_body", to_float, 60.0,
          "Window in which a request body must bring 1 KiB or its end (else 408); 0 = off.",
          flags=("--timeout-request-body",)),
        # --- proxies
        S("proxy_headers", to_bool, True,
          "Apply X-Forwarded-* and Forwarded from trusted peers to the scope.",
          flags=("--proxy-headers",), action="bool"),
        S("forwarded_allow_ips", to_ip_list, ("127.0.0.1", "::1"),
          "Peers trusted for proxy headers: addresses, CIDR networks or '*'.",
          flags=("--forwarded-allow-ips",), gunicorn="forwarded_allow_ips",
          env="FORWARDED_ALLOW_IPS"),
        S("forwarded_headers", to_forwarded_headers, ("x-forwarded-for", "x-forwarded-proto"),
          "Proxy headers believed from trusted peers; add x-forwarded-host/-port/-prefix or "
          "forwarded only when the proxy in front sets them.", flags=("--forwarded-headers",)),
        S("secure_scheme_headers", to_scheme_headers, (),
          "Gunicorn's header -> value map meaning the request came over https.",
          gunicorn="secure_scheme_headers"),
        S("proxy_protocol", to_proxy_protocol, "off",
          "PROXY protocol: every connection from --proxy-allow-ips must start with a v1 or v2 "
          "header (v1, v2, or auto: either), which gives the client and server addresses; "
          "others may not send one. A bare --proxy-protocol means auto.",
          flags=("--proxy-protocol",), gunicorn="proxy_protocol"),
        S("proxy_allow_ips", to_ip_list, ("127.0.0.1", "::1"),
          "Peers that must send a PROXY protocol header: addresses, CIDR networks or '*' "
          "(unix-socket peers always do).",
          flags=("--proxy-allow-ips",), gunicorn="proxy_allow_ips"),
        # --- websockets
        S("ws_max_size", to_int, 16 * 1024 * 1024, "Largest WebSocket message in bytes.",
          flags=("--ws-max-size",), gunicorn="websocket_max_message_size"),
        S("ws_max_queue", to_int, 32,
          "Incoming WebSocket messages queued before reading pauses.",
          flags=("--ws-max-queue",)),
        S("ws_ping_interval", to_opt_float, 20.0, "Seconds between WebSocket pings.",
          flags=("--ws-ping-interval",)),
        S("ws_ping_timeout", to_opt_float, 20.0,
          "Seconds to wait for a pong before closing the WebSocket.",
          flags=("--ws-ping-timeout",)),
        S("ws_per_message_deflate", to_bool, True,
          "Negotiate permessage-deflate.", flags=("--ws-per-message-deflate",), action="bool"),
        # --- command line: options that are Gunicorn settings (handed to Gunicorn's cfg)
        S("workers", to_pos_int, 1, "Worker processes ($WEB_CONCURRENCY when set).",
          scope="gunicorn", flags=("--workers",), gunicorn="workers", env="WEB_CONCURRENCY"),
        S("backlog", to_pos_int, 2048, "Pending connections the listening socket queues.",
          scope="gunicorn", flags=("--backlog",), gunicorn="backlog"),
        S("limit_max_requests", to_opt_int, None,
          "Requests a worker serves before the arbiter replaces it; unset = no limit.",
          scope="gunicorn", flags=("--limit-max-requests",), gunicorn="max_requests"),
        S("limit_max_requests_jitter", to_int, 0,
          "Random 0..N added to --limit-max-requests per worker, to stagger restarts.",
          scope="gunicorn", flags=("--limit-max-requests-jitter",),
          gunicorn="max_requests_jitter"),
        S("timeout_graceful_shutdown", to_opt_int, None,
          "Seconds a stopping worker may drain before it is killed; unset = Gunicorn's 30.",
          scope="gunicorn", flags=("--timeout-graceful-shutdown",), gunicorn="graceful_timeout"),
        S("timeout_worker_healthcheck", to_pos_int, 5,
          "Seconds a worker may go without a heartbeat before the arbiter kills it.",
          scope="gunicorn", flags=("--timeout-worker-healthcheck",), gunicorn="timeout"),
        S("ssl_keyfile", to_opt_path, None, "TLS private key file.",
          scope="gunicorn", flags=("--ssl-keyfile",), gunicorn="keyfile", metavar="PATH"),
        S("ssl_certfile", to_opt_path, None, "TLS certificate (chain) file.",
          scope="gunicorn", flags=("--ssl-certfile",), gunicorn="certfile", metavar="PATH"),
        S("ssl_version", to_int, int(ssl.PROTOCOL_TLS_SERVER),
          "TLS protocol: a number from the ssl module's PROTOCOL_* constants.",
          scope="gunicorn", flags=("--ssl-version",), gunicorn="ssl_version"),
        S("ssl_cert_reqs", choice_int(0, 1, 2), int(ssl.CERT_NONE),
          "Client certificates: 0 none, 1 optional, 2 required (ssl.CERT_*).",
          scope="gunicorn", flags=("--ssl-cert-reqs",), gunicorn="cert_reqs"),
        S("ssl_ca_certs", to_opt_path, None, "CA bundle to verify client certificates with.",
          scope="gunicorn", flags=("--ssl-ca-certs",), gunicorn="ca_certs", metavar="PATH"),
        S("ssl_ciphers", to_opt_str, None, "OpenSSL cipher list; unset = OpenSSL's defaults.",
          scope="gunicorn", flags=("--ssl-ciphers",), gunicorn="ciphers"),
        S("access_log", to_bool, True, "Log one line per request (Gunicorn's access log).",
          scope="gunicorn", flags=("--access-log",), gunicorn="accesslog", action="bool"),
        S("log_level", to_log_level, "info",
          "Log level (trace = debug under Gunicorn).",
          scope="gunicorn", flags=("--log-level",), gunicorn="loglevel"),
        # --- command line only
        S("host", to_str, "127.0.0.1", "Address to listen on.", scope="cli", flags=("--host",)),
        S("port", to_port, 8000, "Port to listen on; 0 picks a free one.",
          scope="cli", flags=("--port",)),
        S("uds", to_opt_path, None, "Listen on this unix domain socket instead.",
          scope="cli", flags=("--uds",), metavar="PATH"),
        S("fd", to_opt_int, None, "Serve the already bound socket on this file descriptor.",
          scope="cli", flags=("--fd",)),
        S("reload", to_bool, False, "Restart the workers when watched files change (development).",
          scope="cli", flags=("--reload",), action="store_true"),
        S("reload_dirs", to_str_list, (), "Directory to watch (repeatable; default: the cwd).",
          scope="cli", flags=("--reload-dir",), action="append", metavar="DIR"),
        S("reload_includes", to_str_list, (),
          "Glob of files to watch (repeatable; '*.py' is always included unless excluded).",
          scope="cli", flags=("--reload-include",), action="append", metavar="GLOB"),
        S("reload_excludes", to_str_list, (),
          "Glob or directory to ignore (repeatable; '.*', '*.py[cod]', '.sw.*', '~*' by default).",
          scope="cli", flags=("--reload-exclude",), action="append", metavar="GLOB"),
        S("reload_delay", to_float, 0.25, "Seconds between checks, and to let edits settle.",
          scope="cli", flags=("--reload-delay",)),
        S("env_file", to_opt_path, None, "Load environment variables from this file (dotenv).",
          scope="cli", flags=("--env-file",), metavar="PATH"),
        S("log_config", to_log_config, None, "Logging configuration file: .ini, .json or .yaml.",
          scope="cli", flags=("--log-config",), metavar="PATH"),
        S("use_colors", to_opt_bool, None, "Colour the level in log lines (unset: when a tty).",
          scope="cli", flags=("--use-colors",), action="bool"),
        S("app_dir", to_str, "", "Directory put first on sys.path to import APP from ('' = the cwd).",
          scope="cli", flags=("--app-dir",), metavar="DIR"),
        S("factory", to_bool, False, "APP is a factory: call it (once per worker) for the app.",
          scope="cli", flags=("--factory",), action="store_true"),
        S("ssl_keyfile_password", to_opt_str, None, "Password of an encrypted --ssl-keyfile.",
          scope="cli", flags=("--ssl-keyfile-password",)),
        S("http2", to_bool, False,
          "uvicorn's HTTP/2 switch: http_protocols 'h2,h1' and, without TLS, h2c by prior "
          "knowledge and by Upgrade (http2_cleartext 'both'). Needs gworkers[http2].",
          scope="cli", flags=("--http2",), action="store_true"),
    )
}
del S

WORKER_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS.values() if s.scope == "worker")


def _gunicorn_value(cfg: Any, setting: Setting) -> Any:
    """Gunicorn's value for ``setting``, or the table default where this Gunicorn lacks it."""
    if setting.gunicorn is None or cfg is None:
        return setting.default
    settings = getattr(cfg, "settings", None)
    if settings is not None and setting.gunicorn not in settings:
        return setting.default
    try:
        value = getattr(cfg, setting.gunicorn)
    except (AttributeError, KeyError):
        return setting.default
    if setting.name in ("forwarded_allow_ips", "proxy_allow_ips") and value is not None:
        value = list(value) if not isinstance(value, str) else value
    return value


class Config:
    """The resolved, immutable settings one worker serves with.

    Built once per worker after the fork; every connection reads attributes from the same object.
    """

    __slots__ = tuple(s.name for s in WORKER_SETTINGS) + ("extra",)

    def __init__(self, **values: Any) -> None:
        extra = values.pop("extra", None) or {}
        unknown = set(values) - set(self.__slots__)
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(f"{name}: unknown setting")
        for setting in WORKER_SETTINGS:
            value = values[setting.name] if setting.name in values else setting.default
            object.__setattr__(self, setting.name, setting.validate(value))
        object.__setattr__(self, "extra", dict(extra))

    @classmethod
    def from_gunicorn(cls, cfg: Any, kwargs: Mapping[str, Any] | None = None) -> Config:
        """Gunicorn's cfg overlaid with a worker class's ``CONFIG_KWARGS``.

        Unknown or ill-typed keys raise ConfigError naming the key; the worker turns that into
        one log line and exit code 3.
        """
        kwargs = dict(kwargs or {})
        # Settings the command line hands to the worker but that are not Config fields
        # (factory, app_dir, ...) travel in ``extra``.
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k in SETTINGS and k not in cls.__slots__}
        unknown = set(kwargs) - set(cls.__slots__)
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(f"{name}: unknown setting in CONFIG_KWARGS")
        values = {}
        for setting in WORKER_SETTINGS:
            if setting.name in kwargs:
                values[setting.name] = kwargs[setting.name]
            else:
                values[setting.name] = _gunicorn_value(cfg, setting)
        return cls(**values, extra=extra)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Config is immutable: cannot set {name}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{s.name}={getattr(self, s.name)!r}" for s in WORKER_SETTINGS)
        return f"Config({fields})"

    def replace(self, **changes: Any) -> Config:
        values = {s.name: getattr(self, s.name) for s in WORKER_SETTINGS}
        values.update(changes)
        return type(self)(**values, extra=self.extra)


def env_default(setting: Setting) -> Any:
    """The command line's default: the environment variable when set, else the table's."""
    if setting.env and setting.env in os.environ:
        return os.environ[setting.env]
    return setting.default
