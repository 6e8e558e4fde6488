"""Schemathesis hooks for tests/service/test_fuzz.py: authenticate with a pool of admin keys.

GET /admin/keys lists every key, the fuzzer's own included, so stateful links can feed its id
to revoke or rotate. Instead of excluding those operations, the run gets a pool of admin keys
(JAMEY_FUZZ_KEYS, comma-separated) and, at most a second after its key stops working, moves to
the next one; requests in between get the documented 401.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis

KEYS = [key for key in os.environ.get("JAMEY_FUZZ_KEYS", "").split(",") if key]
URL = os.environ.get("JAMEY_FUZZ_URL", "")


@schemathesis.auth(refresh_interval=1)
class KeyPool:
    """The first key of the pool that /whoami still accepts."""

    def __init__(self) -> None:
        self.current = 0

    def get(self, case: Any, ctx: Any) -> str:
        while self.current < len(KEYS) - 1:
            answer = httpx.get(f"{URL}/whoami", headers={"X-API-Key": KEYS[self.current]}, timeout=10)
            if answer.status_code != 401:
                break
            self.current += 1
        return KEYS[self.current]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
