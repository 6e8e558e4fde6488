"""Key hygiene, with the clock moved forward: never used, stale, expiring soon, due for rotation;
and `jamey keys stale` / `jamey keys usage` / `jamey keys scopes` on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput
from jamey_engine.keys import SCOPES

from .test_keys_cli import Jamey, jamey  # noqa: F401 (the fixture)


def flags(engine: Engine) -> dict[str, tuple[str, ...]]:
    return {info.name: found for info, found in engine.keys.hygiene()}


def test_a_fresh_unused_key_is_only_never_used(db_engine: Engine) -> None:
    db_engine.keys.create("fresh", actor="test")
    assert flags(db_engine) == {"fresh": ("never_used",)}


def test_flags_follow_the_clock(db_engine: Engine) -> None:
    start = utcnow()
    with time_machine.travel(start, tick=False):
        used = db_engine.keys.create("used", actor="test")
        db_engine.keys.create("idle", actor="test")
        db_engine.keys.create("short-lived", expires_in=timedelta(days=100), actor="test")
        db_engine.keys.verify(used.key)
        db_engine.keys.flush_last_used()
    with time_machine.travel(start + timedelta(days=95), tick=False):
        found = flags(db_engine)
        assert found["used"] == ("stale",)
        assert found["idle"] == ("never_used", "stale")
        assert found["short-lived"] == ("never_used", "stale", "expiring_soon")
        assert sorted(info.name for info in db_engine.keys.stale()) == ["idle", "short-lived", "used"]
        assert db_engine.keys.stale(timedelta(days=100)) == []
    with time_machine.travel(start + timedelta(days=181), tick=False):
        found = flags(db_engine)
        assert "needs_rotation" in found["used"] and "short-lived" not in found  # expired: not working


def test_a_rotated_key_counts_its_age_from_the_rotation(db_engine: Engine) -> None:
    start = utcnow()
    with time_machine.travel(start, tick=False):
        old = db_engine.keys.create("service", actor="test")
    with time_machine.travel(start + timedelta(days=170), tick=False):
        db_engine.keys.rotate(old.id, grace=timedelta(hours=1), actor="test")
    with time_machine.travel(start + timedelta(days=190), tick=False):
        assert "needs_rotation" not in flags(db_engine)["service"]


def test_a_stale_period_under_a_day_is_refused(db_engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="at least 1d"):
        db_engine.keys.stale(timedelta(hours=2))


def test_the_cli_lists_stale_keys_and_usage(jamey: Jamey, db_engine: Engine) -> None:  # noqa: F811
    start = utcnow()
    with time_machine.travel(start, tick=False):
        db_engine.keys.create("forgotten", actor="test")
    with time_machine.travel(start + timedelta(days=91), tick=False):
        stale = jamey.json("keys", "stale")
        assert [row["name"] for row in stale] == ["forgotten"]
        assert stale[0]["flags"] == ["never_used", "stale"]
        assert jamey.json("keys", "stale", "--unused-for", "120d") == []
        bad = jamey("keys", "stale", "--unused-for", "2h")
        assert bad.exit_code != 0 and "at least 1d" in bad.output and "Traceback" not in bad.output
    usage = jamey.json("keys", "usage")
    assert usage == [
        {
            "id": usage[0]["id"],
            "name": "forgotten",
            "requests": 0,
            "rate_limited": 0,
            "errors": 0,
            "last_used_at": None,
        }
    ]


def test_every_scope_is_listed_with_what_it_allows(jamey: Jamey) -> None:  # noqa: F811
    listed = jamey.json("keys", "scopes")
    assert [row["scope"] for row in listed] == list(SCOPES)
    assert all(row["description"] for row in listed)
    created = jamey.json("keys", "create", "--name", "viewer", "--scope", "ops:read")
    assert created["scopes"] == ["ops:read"]
    created = jamey.json("keys", "create", "--name", "operator", "--scope", "ops:write")
    assert created["scopes"] == ["ops:write"]
