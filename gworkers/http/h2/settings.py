"""SETTINGS (RFC 9113 6.5): the ones we advertise, from the configuration, and the client's,
checked as they arrive.

Ours apply at once (see core.py). The client's that we act on: INITIAL_WINDOW_SIZE (our send
windows), MAX_FRAME_SIZE (the frames we write) and HEADER_TABLE_SIZE (the encoder owes a size
update); the rest are checked for their allowed values and otherwise taken as advice.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from .frames import (
    DEFAULT_FRAME_SIZE,
    DEFAULT_WINDOW,
    ENABLE_CONNECT_PROTOCOL,
    ENABLE_PUSH,
    HEADER_TABLE_SIZE,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_FRAME_SIZE_LIMIT,
    MAX_HEADER_LIST_SIZE,
    MAX_WINDOW,
    ErrorCodes,
    FrameError,
    settings_frame,
)

_SETTING = struct.Struct(">HL").unpack_from


class LocalSettings:
    """What we advertise (``frame``: our SETTINGS frame, written in the preface)."""

    __slots__ = ("frame", "initial_window")

    def __init__(self, values: dict[int, int]) -> None:
        self.frame = settings_frame(values)
        self.initial_window = values[INITIAL_WINDOW_SIZE]


def local_settings(config: Any) -> LocalSettings:
    return LocalSettings({
        MAX_CONCURRENT_STREAMS: config.http2_max_concurrent_streams,
        INITIAL_WINDOW_SIZE: config.http2_initial_window_size,
        MAX_FRAME_SIZE: config.http2_max_frame_size,
        MAX_HEADER_LIST_SIZE: config.http2_max_header_list_size,
        ENABLE_CONNECT_PROTOCOL: 1,  # RFC 8441: WebSockets by extended CONNECT (websocket.py)
    })


class PeerSettings:
    """The client's settings, defaults until its SETTINGS arrive."""

    __slots__ = ("initial_window", "max_frame", "table_size")

    def __init__(self) -> None:
        self.initial_window = DEFAULT_WINDOW
        self.max_frame = DEFAULT_FRAME_SIZE
        self.table_size = 4096

    def apply(self, payload: bytes, encoder: Any) -> int | None:
        """Take a SETTINGS payload, in order (6.5.3). Returns by how much the initial window
        changed (None: not set). Raises ``FrameError`` for a value out of range."""
        if len(payload) % 6:
            raise FrameError("SETTINGS length not a multiple of 6", ErrorCodes.FRAME_SIZE_ERROR)
        before = self.initial_window
        window_set = False
        for pos in range(0, len(payload), 6):
            key, value = _SETTING(payload, pos)
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise FrameError("SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1",
                                     ErrorCodes.FLOW_CONTROL_ERROR)
                self.initial_window = value
                window_set = True
            elif key == MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                    raise FrameError("SETTINGS_MAX_FRAME_SIZE out of range")
                self.max_frame = value
            elif key == HEADER_TABLE_SIZE:
                if value != self.table_size:
                    self.table_size = value
                    encoder.table_size_changed()
            elif key in (ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL) and value > 1:
                raise FrameError(f"SETTINGS value {value} for a 0-or-1 setting ({key})")
        return self.initial_window - before if window_set else None


def shift_windows(streams: Any, delta: int) -> None:
    """A new SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's send window by the
    difference (RFC 9113 6.9.2): below zero is allowed, past 2^31-1 is an error."""
    for stream in streams:
        stream.send_window += delta
        if stream.send_window > MAX_WINDOW:
            raise FrameError("SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window",
                             ErrorCodes.FLOW_CONTROL_ERROR)


def upgrade_payload(value: bytes) -> bytes:
    """The SETTINGS payload an HTTP2-Settings field carries: base64url without its padding
    (RFC 7540 3.2.1). Raises ``binascii.Error`` when it is not."""
    return base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
