"""WebSocket support: one ASGI session (``session.py``) over two sans-IO engines, carried by a
byte channel and answered through a protocol's handshake responder (``channel.py``).

``choose_engine`` picks the engine for the ``ws`` setting; ``make_upgrader`` returns the callable
``WorkerContext.websocket_upgrade`` that a protocol calls for a WebSocket opening request.
"""

from __future__ import annotations

from typing import Any


def choose_engine(kind: str) -> tuple[type | None, str]:
    """The engine class for ``ws = auto|websockets|wsproto|none``, and a note on fallback."""
    if kind == "none":
        return None, ""
    if kind in ("auto", "websockets"):
        try:
            from .websockets_impl import WebsocketsEngine
        except ImportError:
            if kind == "websockets":
                raise
        else:
            return WebsocketsEngine, ""
    try:
        from .wsproto_impl import WsprotoEngine
    except ImportError:
        if kind == "wsproto":
            raise
        return None, "neither websockets nor wsproto is installed: WebSocket requests are refused"
    note = "websockets is not installed: using wsproto" if kind == "auto" else ""
    return WsprotoEngine, note


def make_upgrader(config: Any) -> tuple[Any, str]:
    """``(context, scope, responder, draining) -> session``: the session a WebSocket opening
    request is handed to, answering through the protocol's ``responder`` (``ws = none`` still
    gets one: it refuses the handshake cleanly, 400)."""
    from .session import WebSocketSession

    engine, note = choose_engine(config.ws)

    def upgrade(context: Any, scope: dict, responder: Any, draining: bool) -> WebSocketSession:
        return WebSocketSession(context, scope, engine, responder, draining)

    return upgrade, note
