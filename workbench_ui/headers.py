"""An ASGI middleware that adds the workbench's security headers to every HTTP answer, for the
workbench served without nginx (``streamlit run workbench_asgi.py``, as ``jamey stack`` runs it).
The headers themselves are :data:`jamey_engine.security_headers.WORKBENCH_HEADERS`."""

from __future__ import annotations

from typing import Any

from jamey_engine.security_headers import WORKBENCH_HEADERS

_ENCODED = [(name.lower().encode(), value.encode()) for name, value in WORKBENCH_HEADERS.items()]


class SecurityHeaders:
    """Adds :data:`WORKBENCH_HEADERS` to each HTTP response (replacing any of the same name);
    websocket traffic passes untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in _ENCODED}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + _ENCODED}
            await send(message)

        await self.app(scope, receive, send_with_headers)
