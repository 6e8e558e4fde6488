"""Limiter details one key could exploit: a request the global limit refuses is not charged to
the key's own window (memory and real Redis), and a key's limit is capped (one stored entry per
request in its moving window)."""

from __future__ import annotations

import os
import secrets
import time

import pytest

from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput
from jamey_engine.keys.manager import MAX_KEY_LIMIT
from jamey_engine.keys.ratelimit import RateLimiter

REDIS_URL = os.environ.get("JAMEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage_url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else REDIS_URL


def test_a_request_refused_by_the_global_limit_is_not_charged_to_the_key(storage_url: str) -> None:
    # A global limit no other test uses (its counter is named after it in a shared Redis).
    glob = f"{3 + secrets.randbelow(48)}/second"
    limiter = RateLimiter(storage_url, glob)
    amount = int(glob.split("/")[0])
    key, other = f"k{secrets.token_hex(6)}", f"o{secrets.token_hex(6)}"
    for _ in range(amount):
        assert limiter.hit(other, "100000/minute").allowed  # the service is busy with another key
    refused = [limiter.hit(key, "5/minute") for _ in range(20)]
    assert all(not d.allowed and d.scope == "global" for d in refused)
    time.sleep(1.2)  # the global window has passed; the key's own minute has not
    admitted = [limiter.hit(key, "5/minute") for _ in range(5)]
    assert all(d.allowed for d in admitted), [d.scope for d in admitted]
    sixth = limiter.hit(key, "5/minute")
    assert not sixth.allowed and sixth.scope == "key"


def test_a_keys_limit_is_capped(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match=r"at most 100,000 requests per window"):
        engine.keys.create("greedy", scopes=("memory:read",), rate_limit="999999999/day")
    with pytest.raises(InvalidInput, match=r"at most 100,000"):
        engine.keys.create("greedy", scopes=("memory:read",), rate_limit=f"{MAX_KEY_LIMIT + 1}/second")
    made = engine.keys.create("fine", scopes=("memory:read",), rate_limit=f"{MAX_KEY_LIMIT}/minute")
    with pytest.raises(InvalidInput, match=r"at most 100,000"):
        engine.keys.set_limit(made.id, "1000000/hour", actor="test")
    assert engine.keys.show(made.id).rate_limit == f"{MAX_KEY_LIMIT}/minute"
