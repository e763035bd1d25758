"""WebSocket support: one ASGI session (``session.py``) over two sans-IO engines.

``choose_engine`` picks the engine for the ``ws`` setting; ``make_upgrader`` returns the callable
``WorkerContext.websocket_upgrade`` that the HTTP connection calls for ``Upgrade: websocket``.
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
    """``(context, scope, draining[, session_class]) -> session``: the session an ``Upgrade: websocket`` request
    is handed to (``ws = none`` still gets one: it refuses the handshake cleanly, 400)."""
    from .session import WebSocketSession

    engine, note = choose_engine(config.ws)

    def upgrade(context: Any, scope: dict, draining: bool,
                session_class: type = WebSocketSession) -> WebSocketSession:
        """``session_class``: a subclass that answers the handshake in its protocol's terms
        (HTTP/2's extended CONNECT)."""
        return session_class(context, scope, engine, draining)

    return upgrade, note
