"""Our exceptions.

A protocol error carries the HTTP status the connection answers with, so the I/O layer never
maps exception types to statuses: it reads ``exc.status`` and writes the reply.
"""

from __future__ import annotations

# Exit codes Gunicorn's arbiter understands (and ``gworkers-run`` uses the same way): a usage
# error, and a boot error (the arbiter halts instead of respawning the worker).
USAGE_ERROR = 2
BOOT_ERROR = 3


class ConfigError(ValueError):
    """A setting with a bad name or value; the message names the setting."""


class BootError(RuntimeError):
    """The worker cannot serve (app import, lifespan startup, TLS context): exit code 3."""


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what we answer before closing."""

    status: int = 400

    def __init__(self, message: str = "", status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(ProtocolError):
    status = 400


class RequestTimeout(ProtocolError):
    status = 408


class ContentTooLarge(ProtocolError):
    status = 413


class URITooLong(ProtocolError):
    status = 414


class HeaderFieldsTooLarge(ProtocolError):
    status = 431


class ServiceUnavailable(ProtocolError):
    status = 503


class NotImplementedCoding(ProtocolError):
    status = 501


class VersionNotSupported(ProtocolError):
    status = 505


class ClientDisconnected(OSError):
    """``send`` after the peer went away (ASGI spec 2.4 asks for an OSError subclass)."""


class AppProtocolError(RuntimeError):
    """The application broke the ASGI message order; logged with its traceback, answered 500."""
