"""``gworkers-run``: uvicorn's command line over Gunicorn's arbiter.

The parser is generated from the settings table in config.py: every setting with command-line
flags becomes an option, with the table's converter as its type, so a bad value is rejected here
with the flag's name (exit code 2) before anything starts. Only options actually given are
passed on; ``embed.run`` resolves the defaults (and the environment defaults) in one place.
Nothing imports this module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._version import PROG
from .config import SETTINGS, Setting
from .errors import ConfigError

# uvicorn spells this one "--ws-per-message-deflate BOOLEAN"; a bare flag means true here too.
VALUED_BOOLS = {"ws_per_message_deflate"}
# Options that may be given without a value, as Gunicorn's own ``--proxy-protocol`` (= auto).
BARE_VALUES = {"proxy_protocol": "auto"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming the problem, not argparse's usage block.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _type(setting: Setting, item: bool = False) -> Any:
    """The table's converter as an argparse type; ``item`` checks one element of a list."""

    def convert(text: str) -> Any:
        try:
            if item:
                setting.validate([text])
                return text
            return setting.validate(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None

    convert.__name__ = setting.name  # argparse names the type in some messages
    return convert


def _shown_default(setting: Setting) -> str:
    default = setting.default
    if isinstance(default, tuple):
        text = ",".join(map(str, default)) or "none"
    elif default is None:
        text = "unset"
    elif default == "":
        text = "''"
    elif isinstance(default, bool):
        text = "true" if default else "false"
    else:
        text = str(default)
    if setting.env:
        text = f"${setting.env} or {text}"
    return text


def _metavar(setting: Setting) -> str:
    if setting.choices:
        return "[" + "|".join(setting.choices) + "]"
    return setting.metavar or setting.name.upper()


def build_parser() -> argparse.ArgumentParser:
    from .embed import version_line

    parser = Parser(
        prog=PROG,
        description="Serve an ASGI/WSGI app with uvicorn's options, under Gunicorn's arbiter "
                    "and gworkers' worker.",
        allow_abbrev=False,
    )
    parser.add_argument("app", metavar="APP", help="the application, as 'module:attribute'")
    for setting in SETTINGS.values():
        if not setting.flags:
            continue
        help_text = f"{setting.help} [default: {_shown_default(setting)}]".replace("%", "%%")
        common: dict[str, Any] = {"dest": setting.name, "default": argparse.SUPPRESS}
        if setting.action == "bool":
            positive = list(setting.flags)
            negative = ["--no-" + f[2:] for f in setting.flags if f.startswith("--")]
            if setting.name in VALUED_BOOLS:
                parser.add_argument(*positive, nargs="?", const=True, type=_type(setting),
                                    metavar="BOOL", help=help_text, **common)
            else:
                parser.add_argument(*positive, action="store_const", const=True,
                                    help=help_text, **common)
            parser.add_argument(*negative, action="store_const", const=False,
                                help=argparse.SUPPRESS, **common)
            # one help line for the pair
            parser._option_string_actions[positive[0]].option_strings = positive + negative
        elif setting.action == "store_true":
            parser.add_argument(*setting.flags, action="store_const", const=True,
                                help=help_text, **common)
        elif setting.action == "append":
            parser.add_argument(*setting.flags, action="append", type=_type(setting, item=True),
                                metavar=_metavar(setting), help=help_text, **common)
        else:
            if setting.name in BARE_VALUES:
                common.update(nargs="?", const=BARE_VALUES[setting.name])
            parser.add_argument(*setting.flags, type=_type(setting), metavar=_metavar(setting),
                                help=help_text, **common)
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the gworkers, Gunicorn and Python versions and exit")
    return parser


def bare_flags(argv: Sequence[str]) -> list[str]:
    """``--proxy-protocol main:app`` is the bare flag before APP, not a mode named main:app:
    a word after such a flag that is not one of its values is left for the next argument."""
    out = list(argv)
    flags = {flag: name for name in BARE_VALUES for flag in SETTINGS[name].flags}
    for i, arg in enumerate(out[:-1]):
        name = flags.get(arg)
        if name is not None:
            try:
                SETTINGS[name].validate(out[i + 1])
            except ConfigError:
                out[i] = f"{arg}={BARE_VALUES[name]}"
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``gworkers-run`` and ``python -m gworkers``."""
    parser = build_parser()
    options = vars(parser.parse_args(bare_flags(sys.argv[1:] if argv is None else argv)))
    app = options.pop("app")
    from .embed import run

    try:
        run(app, **options)
    except KeyboardInterrupt:  # Ctrl-C before the arbiter took over the signals
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
