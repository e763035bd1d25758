"""HTTP/1.1: the connection (``connection.py``), the response sink and output buffer
(``writer.py``, ``flusher.py``, ``files.py``, ``wire.py``), the RFC 9112 head rules
(``head.py``, ``limits.py``) and the two parser adapters (``httptools_parser.py``,
``h11_parser.py``). ``choose_parser`` picks the adapter for the ``http`` setting.
"""

from __future__ import annotations

from typing import Any


def choose_parser(config: Any) -> tuple[type, str]:
    """The parser adapter class, and a note when ``auto`` had to fall back."""
    if config.http in ("auto", "httptools"):
        try:
            from .httptools_parser import HttptoolsParser
        except ImportError:
            if config.http == "httptools":
                raise
            from .h11_parser import H11Parser

            return H11Parser, "httptools is not installed: using h11"
        return HttptoolsParser, ""
    from .h11_parser import H11Parser

    return H11Parser, ""
