"""The listening socket of ``gworkers.run()``, bound before Gunicorn starts.

Binding here, in the caller's process, turns "address already in use", a path that is not a
socket or a bad ``fd`` into one clear error line (exit 3, or 2 for a bad option) instead of
Gunicorn's retry loop; Gunicorn then takes the socket over as ``fd://N``.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Mapping
from typing import Any

from .errors import BootError, ConfigError


def _unix_in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_socket(values: Mapping[str, Any]) -> tuple[int, str]:
    """Bind the listening socket now, for a clear error; hand its fd to Gunicorn (fd://N).

    Returns the fd (Gunicorn takes ownership and closes it after duplicating) and a
    description for messages.
    """
    backlog = values["backlog"]
    if values["fd"] is not None:
        fd = values["fd"]
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            raise ConfigError(f"fd: {fd} is not an open file descriptor") from None
        if not stat.S_ISSOCK(mode):
            raise ConfigError(f"fd: {fd} is not a socket")
        return fd, f"fd {fd}"
    if values["uds"] is not None:
        path = values["uds"]
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                raise BootError(f"cannot listen on unix:{path}: the path exists and is not a socket")
            if _unix_in_use(path):
                raise BootError(f"cannot listen on unix:{path}: address already in use")
            os.unlink(path)  # a stale socket left by a server that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o666)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            raise BootError(f"cannot listen on unix:{path}: {exc.strerror or exc}") from None
        return sock.detach(), f"unix:{path}"
    host, port = values["host"], values["port"]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BootError(f"cannot listen on {where}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BootError(f"cannot listen on {where}: {reason}") from None
    return sock.detach(), where


def fd_listeners(cfg: Any, log: Any) -> list:
    """Gunicorn's listeners for our ``fd://`` binds, each typed by its socket's real family.

    Gunicorn reads an inherited fd's address through an AF_UNIX socket object: CPython reports
    the address the kernel returns, but PyPy decodes it as a unix path, so there a TCP socket
    became a unix listener named with garbage ("Listening at: unix:..." and a wrong
    ``scope["server"]``). ``socket.socket(fileno=...)`` asks the kernel for the family on both.
    An empty list leaves the binds to Gunicorn.
    """
    from gunicorn import sock as gsock

    kinds = {socket.AF_INET: gsock.TCPSocket, socket.AF_INET6: gsock.TCP6Socket,
             socket.AF_UNIX: gsock.UnixSocket}
    found = []
    for fd in cfg.address:
        if not isinstance(fd, int):
            return []
        probe = socket.socket(fileno=fd)
        try:
            kind, name = kinds.get(probe.family), probe.getsockname()
        finally:
            probe.detach()
        if kind is None:
            return []
        found.append((kind, name, fd))
    return [kind(name, cfg, log, fd=fd) for kind, name, fd in found]
