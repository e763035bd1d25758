"""Logging for ``gworkers.run()``: a ``--log-config`` file read and checked before boot, and
Gunicorn's logger class with that config (or coloured level names) applied on top of it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .errors import ConfigError


def read_log_config(path: str | dict) -> tuple[str, Any]:
    """('ini', path) or ('dict', the parsed .json/.yaml dictConfig), checked before boot."""
    if isinstance(path, dict):  # run(log_config={...})
        return "dict", path
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".json":
            with open(path) as f:
                data = json.load(f)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError("log_config: PyYAML is not installed") from None
            with open(path) as f:
                data = yaml.safe_load(f)
        else:
            import configparser

            parser = configparser.ConfigParser()
            if not parser.read(path) or not parser.has_section("loggers"):
                raise ConfigError(f"log_config: {path!r} is not a logging .ini file")
            return "ini", path
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"log_config: cannot read {path!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"log_config: {path!r} does not hold a dictConfig mapping")
    return "dict", data



_COLORS = {logging.DEBUG: "36", logging.INFO: "32", logging.WARNING: "33",
           logging.ERROR: "31", logging.CRITICAL: "1;31"}


class _ColorFormatter(logging.Formatter):
    """Wraps Gunicorn's formatter and colours the level name."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        saved = record.levelname
        record.levelname = f"\x1b[{_COLORS.get(record.levelno, '0')}m{saved}\x1b[0m"
        try:
            return self.inner.format(record)
        finally:
            record.levelname = saved


def apply_log_config(log_config: tuple[str, Any]) -> None:
    """Apply a --log-config read by ``read_log_config`` (raises on a config logging rejects)."""
    import copy
    import logging.config

    kind, data = log_config
    if kind == "ini":
        logging.config.fileConfig(data, disable_existing_loggers=False)
    else:
        logging.config.dictConfig(copy.deepcopy(data))


def logger_class(colors: bool, log_config: tuple[str, Any] | None) -> type:
    """Gunicorn's logger, then the user's --log-config on top of it, or coloured levels.

    The config is applied after Gunicorn's own setup (and again on each HUP), whole, as
    logging's dictConfig/fileConfig read it: Gunicorn's ``logconfig_dict`` merges only the
    top-level keys, which breaks a config that does not define Gunicorn's own handlers.
    """
    from gunicorn.glogging import Logger

    class EmbeddedLogger(Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            if log_config is not None:
                apply_log_config(log_config)
                return
            if not colors:
                return
            for handler in self.error_log.handlers:
                if isinstance(handler, logging.StreamHandler) and handler.formatter is not None \
                        and not isinstance(handler.formatter, _ColorFormatter):
                    handler.setFormatter(_ColorFormatter(handler.formatter))

    return EmbeddedLogger
