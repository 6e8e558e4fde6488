"""Tiered retention with restic's semantics: a 400-day calendar of backups and the reasons each
one is kept, then real backups (local, and copied to a real rclone webdav remote) pruned by
their own policies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from click.testing import CliRunner
from private_servers import PrivateWebdav

from jamey_engine.cli import cli
from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.vault.tiers import Policy, plan

from .support import fill
from .test_offsite import offsite_env, webdav  # noqa: F401 (the fixture)

SATURDAY = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_a_400_day_calendar_keeps_the_newest_of_each_day_week_and_month_with_its_reasons() -> None:
    with time_machine.travel(SATURDAY, tick=False):
        now = utcnow()
        calendar = []
        for days_back in range(400):
            at = now - timedelta(days=days_back, hours=9)  # 03:00 each day
            calendar.append((f"daily-{days_back:03d}", at))
            if days_back % 7 == 0:  # and an earlier, manual one that day
                calendar.append((f"manual-{days_back:03d}", at - timedelta(hours=2)))
        decisions = plan(calendar, Policy(last=1, daily=7, weekly=4, monthly=12), now)

    assert [d.id for d in decisions] == [b for b, _ in sorted(calendar, key=lambda b: b[1], reverse=True)]
    kept = {d.created_at.date(): d.reasons for d in decisions if d.keep}
    days = [date(2026, 12, n) for n in (5, 4, 3, 2, 1)] + [date(2026, 11, 30), date(2026, 11, 29)]
    weeks = [date(2026, 11, 22), date(2026, 11, 15)]
    month_ends = [
        date(2026, m, d) for m, d in ((10, 31), (9, 30), (8, 31), (7, 31), (6, 30), (5, 31), (4, 30))
    ]
    month_ends += [date(2026, 3, 31), date(2026, 2, 28), date(2026, 1, 31)]
    assert sorted(kept) == sorted(days + weeks + month_ends)
    assert kept[date(2026, 12, 5)] == (
        "newest",
        "last 1",
        "daily 2026-12-05",
        "weekly 2026-W49",
        "monthly 2026-12",
    )
    assert kept[date(2026, 11, 30)] == ("daily 2026-11-30", "monthly 2026-11")
    assert kept[date(2026, 11, 29)] == ("daily 2026-11-29", "weekly 2026-W48")
    assert kept[date(2026, 11, 15)] == ("weekly 2026-W46",)
    assert kept[date(2026, 1, 31)] == ("monthly 2026-01",)
    # Only the newest backup of a day counts: the earlier manual one of a kept day goes.
    assert kept[date(2026, 10, 31)] == ("monthly 2026-10",)
    for manual in ("manual-000", "manual-035"):
        assert next(d for d in decisions if d.id == manual).reasons == ()
    assert len([d for d in decisions if d.keep]) == 19 and len(decisions) == 400 + 58


def test_a_policy_of_zeros_keeps_everything_and_days_keeps_the_recent() -> None:
    with time_machine.travel(SATURDAY, tick=False):
        now = utcnow()
        calendar = [(f"b{n}", now - timedelta(days=n)) for n in range(10)]
        assert all(d.keep for d in plan(calendar, Policy(), now))
        recent = plan(calendar, Policy(days=3), now)
    assert [d.id for d in recent if d.keep] == ["b0", "b1", "b2"]
    assert recent[1].reasons == ("within 3 days",)


def test_a_days_rule_beyond_the_earliest_date_keeps_everything_within_it() -> None:
    now = utcnow()
    calendar = [(f"b{n}", now - timedelta(days=400 * n)) for n in range(5)]
    decisions = plan(calendar, Policy(days=10**10), now)  # 10**10 days: more than a timedelta holds
    assert all(d.keep for d in decisions)
    assert all(f"within {10**10} days" in d.reasons for d in decisions)


@pytest.fixture
def tiered(engine: Engine, webdav: PrivateWebdav) -> Iterator[Engine]:  # noqa: F811
    env = {
        **offsite_env(engine, webdav),
        "JAMEY_BACKUP_KEEP": "1",
        "JAMEY_BACKUP_KEEP_DAILY": "2",
        "JAMEY_BACKUP_KEEP_MONTHLY": "2",
        "JAMEY_BACKUP_REMOTE_KEEP_DAILY": "0",
        "JAMEY_BACKUP_REMOTE_KEEP_MONTHLY": "0",
    }
    engine.close()
    tiered = Engine(Settings.from_env(env))
    yield tiered
    tiered.close()


def test_local_and_remote_backups_are_pruned_by_their_own_policies_with_the_reasons_shown(
    tiered: Engine,
    webdav: PrivateWebdav,  # noqa: F811
) -> None:
    fill(tiered, per_layer=2)
    ids = {}
    with time_machine.travel(SATURDAY, tick=False):
        start = utcnow()
    for days_back in (40, 10, 9, 1, 0):
        with time_machine.travel(start - timedelta(days=days_back), tick=True):
            ids[days_back] = tiered.vault.create().id
    with time_machine.travel(start + timedelta(minutes=5), tick=True):
        env = {**offsite_env(tiered, webdav), "JAMEY_BACKUP_KEEP": "1", "JAMEY_BACKUP_KEEP_DAILY": "2"}
        env |= {"JAMEY_BACKUP_KEEP_MONTHLY": "2", "JAMEY_BACKUP_REMOTE_KEEP_DAILY": "0"}
        env |= {"JAMEY_BACKUP_REMOTE_KEEP_MONTHLY": "0"}
        shown = CliRunner().invoke(cli, ["backup", "retention", "plan", "--json"], env=env)
        assert shown.exit_code == 0, shown.output
        plans = json.loads(shown.output)
        local = {d["id"]: d["reasons"] for d in plans["local"]}
        assert local == {
            ids[0]: ["newest", "last 1", "daily 2026-12-05", "monthly 2026-12"],
            ids[1]: ["daily 2026-12-04"],
            ids[9]: ["monthly 2026-11"],
            ids[10]: [],
            ids[40]: [],
        }
        remote = {d["id"]: d["reasons"] for d in plans["remote"]}
        assert remote == {ids[0]: ["newest", "last 1"], ids[1]: [], ids[9]: [], ids[10]: [], ids[40]: []}

        deleted = tiered.vault.retain(actor="test")
        assert deleted == [ids[40], ids[10]]
        listed = {info.id: info.location for info in tiered.vault.list(include_remote=True)}
    assert listed == {ids[0]: "both", ids[1]: "local", ids[9]: "local"}
    stored = sorted(p.name for p in (webdav.root / "backups").iterdir())
    assert stored == sorted([f"{ids[0]}.tar.zst", f"{ids[0]}.json"])
    assert tiered.vault.push() == {}, "a copy the remote's retention let go is not copied again"


def _spread_backups(engine: Engine) -> tuple[datetime, dict[int, str]]:
    fill(engine, per_layer=2)
    ids = {}
    with time_machine.travel(SATURDAY, tick=False):
        start = utcnow()
    for days_back in (40, 10, 9, 1, 0):
        with time_machine.travel(start - timedelta(days=days_back), tick=True):
            ids[days_back] = engine.vault.create().id
    return start, ids


def test_tiered_retention_applies_through_a_backup_delete_plan_from_the_cli(
    tiered: Engine,
    webdav: PrivateWebdav,  # noqa: F811
) -> None:
    from jamey_engine.plans import list_plans
    from jamey_engine.plans.store import get

    start, ids = _spread_backups(tiered)
    env = {**offsite_env(tiered, webdav), "JAMEY_BACKUP_KEEP": "1", "JAMEY_BACKUP_KEEP_DAILY": "2"}
    env |= {"JAMEY_BACKUP_KEEP_MONTHLY": "2", "JAMEY_BACKUP_REMOTE_KEEP_DAILY": "0"}
    env |= {"JAMEY_BACKUP_REMOTE_KEEP_MONTHLY": "0"}
    with time_machine.travel(start + timedelta(minutes=5), tick=True):
        applied = CliRunner().invoke(cli, ["backup", "retention", "apply", "--yes", "--json"], env=env)
        assert applied.exit_code == 0, applied.output
        body = json.loads(applied.output)
        listed = {info.id: info.location for info in tiered.vault.list(include_remote=True)}
    assert body["action"] == "backup-delete" and body["status"] == "applied"
    assert body["result"]["deleted_local"] == [ids[40], ids[10]]
    assert body["result"]["deleted_remote"] == sorted([ids[1], ids[9], ids[10], ids[40]])
    assert all(check["ok"] for check in body["verification"]) and len(body["verification"]) == 6
    assert listed == {ids[0]: "both", ids[1]: "local", ids[9]: "local"}
    stored = get(tiered.db, body["plan_id"])
    assert stored.parameters == {"backup_id": None, "retention": True, "keep_last": None, "keep_days": None}
    assert [p.id for p in list_plans(tiered.db) if p.action == "backup-delete"] == [body["plan_id"]]


def test_a_backup_made_between_plan_and_apply_makes_the_retention_plan_stale(
    tiered: Engine,
    webdav: PrivateWebdav,  # noqa: F811
) -> None:
    from jamey_engine.errors import Conflict
    from jamey_engine.plans import Actor, apply, plan

    start, ids = _spread_backups(tiered)
    with time_machine.travel(start + timedelta(minutes=5), tick=True):
        record = plan(tiered, "backup-delete", {"retention": True}, Actor.cli())
        assert record.summary["delete_local"] == [ids[40], ids[10]]
        newer = tiered.vault.create().id  # today's backup: the one before it no longer the day's newest
        with pytest.raises(Conflict, match="stale"):
            apply(tiered, record.id, record.confirm_phrase, Actor.cli())
        left = {info.id for info in tiered.vault.list()}
    assert left == {ids[40], ids[10], ids[9], ids[1], ids[0], newer}, "nothing deleted by a stale plan"


def test_a_manual_backup_applies_the_backup_retention_through_the_same_plan(
    tiered: Engine,
    webdav: PrivateWebdav,  # noqa: F811
) -> None:
    from jamey_engine.plans import list_plans

    start, ids = _spread_backups(tiered)
    env = {**offsite_env(tiered, webdav), "JAMEY_BACKUP_KEEP": "1", "JAMEY_BACKUP_KEEP_DAILY": "2"}
    env |= {"JAMEY_BACKUP_KEEP_MONTHLY": "2", "JAMEY_BACKUP_REMOTE_KEEP_DAILY": "0"}
    env |= {"JAMEY_BACKUP_REMOTE_KEEP_MONTHLY": "0"}
    with time_machine.travel(start + timedelta(minutes=5), tick=True):
        made = CliRunner().invoke(cli, ["backup", "create"], env=env)
        assert made.exit_code == 0, made.output
        left = {info.id for info in tiered.vault.list()}
    # Today's new backup is the day's newest: the earlier one of today goes too.
    assert "retention (plan" in made.output and "deleted 3 older backup(s)" in made.output, made.output
    assert ids[0] not in left and ids[40] not in left and ids[10] not in left
    assert {ids[1], ids[9]} <= left and len(left) == 3
    assert len([p for p in list_plans(tiered.db) if p.action == "backup-delete"]) == 1
