"""A tiny real upstream for the nginx tests (run by uvicorn in a subprocess).

Every HTTP route answers JSON with the path and the request headers it received, so a test
can see what nginx forwarded; /_stcore/stream (Streamlit's websocket path) echoes messages.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "headers": dict(request.headers)})


async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse("upstream_metrics_total 1\n")


async def stream(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"proto={websocket.headers.get('x-forwarded-proto', '')}")
    async for message in websocket.iter_text():
        await websocket.send_text(f"echo:{message}")


app = Starlette(
    routes=[
        Route("/metrics", metrics),
        WebSocketRoute("/_stcore/stream", stream),
        Route("/{path:path}", echo, methods=["GET", "POST"]),
    ]
)
