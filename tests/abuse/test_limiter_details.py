"""Limiter details one key could exploit: a request the global limit refuses is not charged to
the key's own window (memory and real Redis), and every limit is capped (one stored entry per
request in its moving window): a key's own, JAMEY_DEFAULT_RATE_LIMIT (which every key without
its own uses) and JAMEY_GLOBAL_RATE_LIMIT, and a limit stored before the cap is counted at it.

The settings' caps were seen failing on the old code: JAMEY_DEFAULT_RATE_LIMIT=999999999/day was
accepted (and each hit of a key without its own limit stored an entry for a day)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from jamey_engine.cli import cli
from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.errors import ConfigError, InvalidInput
from jamey_engine.keys.ratelimit import MAX_GLOBAL_LIMIT, MAX_KEY_LIMIT, RateLimiter

REDIS_URL = os.environ.get("JAMEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage_url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else REDIS_URL


def test_a_request_refused_by_the_global_limit_is_not_charged_to_the_key(storage_url: str) -> None:
    # A global limit no other test uses (its counter is named after it in a shared Redis), above
    # the six requests the key sends in one second below, so only the key's own limit refuses
    # the sixth (from 3-50, a limit of 3 or 4 refused one of the five: 1 draw in 24, per storage).
    glob = f"{6 + secrets.randbelow(45)}/second"
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


@pytest.mark.parametrize(
    ("variable", "value", "cap"),
    [
        ("JAMEY_DEFAULT_RATE_LIMIT", "999999999/day", "100,000"),
        ("JAMEY_DEFAULT_RATE_LIMIT", f"{MAX_KEY_LIMIT + 1}/second", "100,000"),
        ("JAMEY_GLOBAL_RATE_LIMIT", "999999999/day", "1,000,000"),
        ("JAMEY_GLOBAL_RATE_LIMIT", f"{MAX_GLOBAL_LIMIT + 1}/hour", "1,000,000"),
    ],
)
def test_a_limit_setting_is_capped(tmp_path: Path, variable: str, value: str, cap: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"^Setting {variable}='{value}' is invalid: at most {cap} requests"
    ):
        Settings.from_env({"JAMEY_DATA_DIR": str(tmp_path), variable: value})
    result = CliRunner().invoke(cli, ["status"], env={"JAMEY_DATA_DIR": str(tmp_path), variable: value})
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: Setting {variable}='{value}' is invalid: at most {cap}")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["0/minute", "many/minute", "10/minute;5/second"])
def test_a_default_limit_that_is_not_one_limit_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(
        ConfigError, match=r"^Setting JAMEY_DEFAULT_RATE_LIMIT=.* is invalid: not a rate limit"
    ):
        Settings.from_env({"JAMEY_DATA_DIR": str(tmp_path), "JAMEY_DEFAULT_RATE_LIMIT": value})


def test_limits_at_the_caps_are_accepted(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "JAMEY_DATA_DIR": str(tmp_path),
            "JAMEY_DEFAULT_RATE_LIMIT": f"{MAX_KEY_LIMIT}/day",
            "JAMEY_GLOBAL_RATE_LIMIT": f"{MAX_GLOBAL_LIMIT}/hour",
        }
    )
    assert RateLimiter.from_settings(settings).global_limit.amount == MAX_GLOBAL_LIMIT


def test_a_global_limit_above_the_cap_is_refused_by_the_limiter_too() -> None:
    with pytest.raises(InvalidInput, match=r"global rate limit '2000000/second': at most 1,000,000"):
        RateLimiter("memory://", "2000000/second")


def test_a_limit_stored_before_the_cap_is_counted_at_the_cap() -> None:
    limiter = RateLimiter("memory://", "1000000/hour")
    decision = limiter.hit(f"old{secrets.token_hex(4)}", "999999999/day")  # a row from before the cap
    assert decision.allowed and decision.limit == MAX_KEY_LIMIT


def test_a_capped_setting_in_a_real_process_shows_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jamey_engine", "status"],
        capture_output=True,
        text=True,
        env={**os.environ, "JAMEY_DATA_DIR": str(tmp_path), "JAMEY_DEFAULT_RATE_LIMIT": "999999999/day"},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(
        "error: Setting JAMEY_DEFAULT_RATE_LIMIT='999999999/day' is invalid: at most"
    )
    assert "Traceback" not in proc.stderr
