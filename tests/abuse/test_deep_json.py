"""Deeply nested JSON (``'[' * 100000``) gets the route's 400 in the error shape, never a 500 with
a RecursionError: on the store fast path and on Alertmanager's webhook, in a real ``jamey serve``."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from service.service_support import RunningServer

DEEP = b"[" * 100_000


def _key(server: RunningServer, scope: str) -> str:
    created = server.jamey("keys", "create", "--name", f"deep-{scope}", "--scope", scope, "--json")
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["key"])


@pytest.mark.parametrize(
    ("path", "scope"),
    [("/memories", "memory:write"), ("/alertmanager/webhook", "alerts:write")],
)
def test_deep_json_gets_the_routes_400(serve: Callable[..., RunningServer], path: str, scope: str) -> None:
    server = serve()
    key = _key(server, scope)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for body in (DEEP, b'{"layer": "episodic", "content": ' + DEEP + b"}"):
        response = httpx.post(server.url + path, content=body, headers=headers, timeout=30)
        assert response.status_code == 400, response.text
        answer = response.json()
        assert answer == {"error": answer["error"], "status": 400} and answer["error"], answer
    assert "RecursionError" not in server.log()
    assert "Traceback" not in server.log()
