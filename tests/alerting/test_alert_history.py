"""Alert history in the database, on SQLite and PostgreSQL: stored once, pruned after
JAMEY_ALERT_HISTORY_DAYS, intervals and time to resolve."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput
from jamey_engine.observability.alert_history import (
    Notification,
    history_frame,
    intervals,
    notification_counts,
    parse_webhook,
    prune_history,
    resolve_stats,
    store_notifications,
)

LABELS = {"alertname": "JameyBackupFailed", "severity": "critical", "layer": "working"}


def test_each_notification_is_stored_once_on_every_database(db_engine: Engine) -> None:
    start = utcnow() - timedelta(hours=2)
    firing = Notification("fp1", "firing", LABELS, {"summary": "s"}, start, None)
    done = Notification("fp1", "resolved", LABELS, {}, start, start + timedelta(minutes=45))
    store_notifications(db_engine.db, [firing, firing])
    store_notifications(db_engine.db, [firing, done])
    store_notifications(db_engine.db, [done])
    assert notification_counts(db_engine.db) == {"firing": 1, "resolved": 1}
    spans = intervals(db_engine.db, utcnow() - timedelta(days=1))
    assert len(spans) == 1 and bool(spans.iloc[0]["resolved"])
    assert spans.iloc[0]["seconds"] == 45 * 60
    frame = history_frame(db_engine.db, utcnow() - timedelta(days=1), layer="working")
    assert list(frame["status"]) == ["resolved", "firing"], "newest first"


def test_history_older_than_the_setting_is_pruned(db_engine: Engine) -> None:
    start = utcnow() - timedelta(hours=1)
    store_notifications(db_engine.db, [Notification("old", "firing", LABELS, {}, start, None)])
    assert prune_history(db_engine.db, 90) == 0
    assert prune_history(db_engine.db, 90, now=utcnow() + timedelta(days=91)) == 1
    assert notification_counts(db_engine.db) == {"firing": 0, "resolved": 0}
    with pytest.raises(InvalidInput, match="above zero"):
        prune_history(db_engine.db, 0)


def test_a_still_firing_interval_runs_to_the_end_of_the_range(engine: Engine) -> None:
    now = utcnow()
    store_notifications(
        engine.db,
        [
            Notification("a", "firing", LABELS, {}, now - timedelta(minutes=30), None),
            Notification("b", "firing", {"alertname": "Other"}, {}, now - timedelta(days=3), None),
            Notification("b", "resolved", {"alertname": "Other"}, {}, now - timedelta(days=3), now - timedelta(days=2)),
        ],
    )  # fmt: skip
    spans = intervals(engine.db, now - timedelta(hours=1), now)
    assert list(spans["fingerprint"]) == ["a"], "an interval that ended before the range is left out"
    assert not spans.iloc[0]["resolved"] and spans.iloc[0]["seconds"] == pytest.approx(1800, abs=1)
    stats = resolve_stats(intervals(engine.db, now - timedelta(days=7), now))
    by_name = stats.set_index("alertname")
    assert by_name.loc["Other", "longest_resolve_seconds"] == 86400
    assert by_name.loc["JameyBackupFailed", "resolved"] == 0


def test_nanosecond_times_and_go_zero_times_parse() -> None:
    (parsed,) = parse_webhook(
        {
            "version": "4",
            "alerts": [
                {
                    "status": "firing", "fingerprint": "f", "labels": {"alertname": "A"},
                    "startsAt": "2026-12-01T06:00:00.123456789+01:00", "endsAt": "0001-01-01T00:00:00Z",
                }
            ],
        }
    )  # fmt: skip
    assert parsed.starts_at.isoformat() == "2026-12-01T05:00:00.123456+00:00"
    assert parsed.ends_at is None


def test_text_with_nul_is_stored_on_every_database(db_engine: Engine) -> None:
    """PostgreSQL's text cannot hold NUL, which the payload's schema allows: the columns keep
    U+FFFD in its place, the labels keep every character, and a repeat is still one row."""
    start = utcnow() - timedelta(hours=1)
    labels = {"alertname": "A\x00B", "severity": "\x00", "layer": "working"}
    odd = Notification("f\x00", "firing", labels, {"summary": "\x00"}, start, None)
    store_notifications(db_engine.db, [odd, odd], receiver="r\x00")
    store_notifications(db_engine.db, [odd], receiver="r\x00")
    frame = history_frame(db_engine.db, utcnow() - timedelta(days=1))
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["alertname"], row["fingerprint"], row["severity"], row["receiver"], row["summary"]) == (
        "A\ufffdB",
        "f\ufffd",
        "\ufffd",
        "r\ufffd",
        "\x00",
    )
