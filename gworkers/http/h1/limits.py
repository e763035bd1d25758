"""Request-head size limits, applied the same way by both parser adapters.

Gunicorn's ``limit_request_line`` (414), ``limit_request_fields`` and
``limit_request_field_size`` (431), plus a cap on the whole head so a parser never buffers an
endless header: ``h11_max_incomplete_event_size`` (its name comes from uvicorn's h11 option; here
it bounds the head on both parsers).
"""

from __future__ import annotations

from typing import Any

from ...errors import HeaderFieldsTooLarge, URITooLong


class Limits:
    __slots__ = ("field_size", "fields", "head", "line")

    def __init__(self, config: Any) -> None:
        self.line = config.limit_request_line or 0
        self.fields = config.limit_request_fields or 0
        self.field_size = config.limit_request_field_size or 0
        self.head = config.h11_max_incomplete_event_size or 0

    def check_target(self, target: bytes) -> None:
        if self.line and len(target) > self.line:
            raise URITooLong("request line too long")

    def check_field(self, count: int, name: bytes, value: bytes) -> None:
        if self.fields and count > self.fields:
            raise HeaderFieldsTooLarge("too many header fields")
        if self.field_size and len(name) + len(value) + 2 > self.field_size:
            raise HeaderFieldsTooLarge("header field too large")

    def check_head_size(self, size: int) -> None:
        if self.head and size > self.head:
            raise HeaderFieldsTooLarge("request head too large")
