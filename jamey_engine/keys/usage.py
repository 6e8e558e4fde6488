"""Per-key usage and key hygiene: which key sends the traffic, which is throttled, which nobody
uses, which expire soon, which are overdue for rotation.

Every service process counts the requests it answers per key and hour in memory
(:class:`UsageRecorder`, a few hundred nanoseconds on the request path) and adds them to the
``key_usage`` table in batches, with the keys' last-used times. So the totals are right with the
database alone, whichever worker answered; the service's ``/metrics`` exports them per key id
(never a secret) at scrape time, for keys active or revoked within :data:`METRICS_RETIRED_DAYS`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from jamey_engine import thresholds
from jamey_engine.db import Database
from jamey_engine.durations import days_before
from jamey_engine.models import ApiKey, KeyUsage

if TYPE_CHECKING:  # pandas is imported where a frame is built: the service starts without it
    import pandas as pd

log = logging.getLogger(__name__)

HOUR = 3600
METRICS_RETIRED_DAYS = 30  # keys revoked or expired longer ago than this drop out of /metrics
EXPIRING_WITHIN = thresholds.KEY_EXPIRING_WITHIN
FLAGS: dict[str, str] = {
    "never_used": "never used",
    "stale": "unused for the stale period",
    "expiring_soon": "expires within 7 days",
    "needs_rotation": "older than the rotation period",
}
_COUNTS = ("requests", "rate_limited", "client_errors", "server_errors")


class UsageRecorder:
    """Requests per key and hour, counted in memory and added to ``key_usage`` by :meth:`flush`.

    Thread-safe. Nothing is lost between flushes of one process; a process killed between two
    flushes loses at most its unflushed counts (seconds of traffic), never a written row.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], list[int]] = {}

    def count(self, key_id: str, status: int, at: float | None = None) -> None:
        """Count one answered request of ``key_id`` with HTTP ``status`` (at epoch ``at``)."""
        hour = int(time.time() if at is None else at) // HOUR
        with self._lock:
            row = self._pending.get((key_id, hour))
            if row is None:
                row = self._pending[(key_id, hour)] = [0, 0, 0, 0]
            row[0] += 1
            if status == 429:
                row[1] += 1
            elif 400 <= status < 500:
                row[2] += 1
            elif status >= 500:
                row[3] += 1

    def flush(self) -> None:
        """Add the pending counts to the database (one statement). Never raises: on failure the
        counts are kept for the next flush and a warning is logged."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        rows = [
            {
                "key_id": key_id,
                "hour": datetime.fromtimestamp(hour * HOUR, UTC),
                **dict(zip(_COUNTS, counts, strict=True)),
            }
            for (key_id, hour), counts in pending.items()
        ]
        table = KeyUsage.__table__
        try:
            with self.db.engine.begin() as conn:
                insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
                statement = insert(KeyUsage)
                statement = statement.on_conflict_do_update(
                    index_elements=["key_id", "hour"],
                    set_={
                        name: getattr(table.c, name) + getattr(statement.excluded, name) for name in _COUNTS
                    },
                )
                conn.execute(statement, rows)
        except Exception:
            with self._lock:  # put them back: the next flush writes them
                for (key_id, hour), counts in pending.items():
                    row = self._pending.setdefault((key_id, hour), [0, 0, 0, 0])
                    for index, value in enumerate(counts):
                        row[index] += value
            log.warning(
                "could not record the usage of %d API key(s); kept for the next flush",
                len(pending),
                exc_info=True,
            )


def _window(days: float | None, now: datetime | None) -> tuple[datetime, datetime]:
    end = now or datetime.now(UTC)
    start = days_before(end, days) if days is not None else datetime(1970, 1, 1, tzinfo=UTC)
    return start, end


def usage_by_key(
    db: Database, days: float | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per key (every key, unused ones with zeros): ``id``, ``name``, ``requests``,
    ``rate_limited``, ``errors`` (4xx other than 429, and 5xx) and ``last_used_at``, over the
    last ``days`` days (all time when None), most requests first."""
    start, end = _window(days, now)
    usage = KeyUsage.__table__
    totals = (
        sa.select(
            usage.c.key_id,
            sa.func.sum(usage.c.requests).label("requests"),
            sa.func.sum(usage.c.rate_limited).label("rate_limited"),
            sa.func.sum(usage.c.client_errors + usage.c.server_errors).label("errors"),
        )
        .where(usage.c.hour >= start.replace(minute=0, second=0, microsecond=0), usage.c.hour <= end)
        .group_by(usage.c.key_id)
        .subquery()
    )
    keys = ApiKey.__table__
    query = sa.select(keys.c.id, keys.c.name, keys.c.last_used_at, totals).outerjoin(
        totals, totals.c.key_id == keys.c.id
    )
    with db.session() as session:
        rows = [
            {
                "id": row.id,
                "name": row.name,
                "requests": int(row.requests or 0),
                "rate_limited": int(row.rate_limited or 0),
                "errors": int(row.errors or 0),
                "last_used_at": row.last_used_at,
            }
            for row in session.execute(query)
        ]
    rows.sort(key=lambda row: (-row["requests"], row["name"]))
    return rows


def usage_series(
    db: Database, since: datetime, until: datetime, key_ids: Iterable[str] | None = None
) -> pd.DataFrame:
    """Hourly rows ``hour``, ``key_id``, ``requests``, ``rate_limited``, ``errors`` between
    ``since`` and ``until`` (for sparklines and per-key charts), oldest first."""
    usage = KeyUsage.__table__
    query = (
        sa.select(
            KeyUsage.hour,
            KeyUsage.key_id,
            KeyUsage.requests,
            KeyUsage.rate_limited,
            (usage.c.client_errors + usage.c.server_errors).label("errors"),
        )
        .where(KeyUsage.hour >= since.replace(minute=0, second=0, microsecond=0), KeyUsage.hour <= until)
        .order_by(KeyUsage.hour)
    )
    if key_ids is not None:
        query = query.where(KeyUsage.key_id.in_(list(key_ids)))
    import pandas as pd

    with db.session() as session:
        rows = [tuple(row) for row in session.execute(query)]
    return pd.DataFrame(rows, columns=["hour", "key_id", "requests", "rate_limited", "errors"])


@dataclass(frozen=True)
class MetricTotals:
    """All-time totals of one key for /metrics."""

    key_id: str
    requests: int
    rate_limited: int
    client_errors: int
    server_errors: int


def totals_for_metrics(db: Database, now: datetime | None = None) -> list[MetricTotals]:
    """All-time totals of every key that is active, or stopped working less than
    METRICS_RETIRED_DAYS ago: the number of series stays bounded by the number of keys."""
    moment = now or datetime.now(UTC)
    cutoff = moment - timedelta(days=METRICS_RETIRED_DAYS)
    usage = KeyUsage.__table__
    keys = ApiKey.__table__
    live = sa.and_(
        sa.or_(keys.c.revoked_at.is_(None), keys.c.revoked_at > cutoff),
        sa.or_(keys.c.expires_at.is_(None), keys.c.expires_at > cutoff),
        sa.or_(keys.c.grace_until.is_(None), keys.c.grace_until > cutoff),
    )
    query = (
        sa.select(usage.c.key_id, *(sa.func.sum(getattr(usage.c, name)) for name in _COUNTS))
        .join(keys, keys.c.id == usage.c.key_id)
        .where(live)
        .group_by(usage.c.key_id)
    )
    with db.connect() as conn:
        return [MetricTotals(row[0], *(int(value or 0) for value in row[1:])) for row in conn.execute(query)]


def hygiene_flags(
    created_at: datetime,
    last_used_at: datetime | None,
    expires_at: datetime | None,
    now: datetime,
    stale_days: float,
    rotate_days: float,
) -> tuple[str, ...]:
    """The hygiene flags (keys of :data:`FLAGS`) of one working key at ``now``."""
    flags = []
    if last_used_at is None:
        flags.append("never_used")
    if (last_used_at or created_at) < days_before(now, stale_days):
        flags.append("stale")
    if expires_at is not None and now <= expires_at <= now + EXPIRING_WITHIN:
        flags.append("expiring_soon")
    if created_at < days_before(now, rotate_days):
        flags.append("needs_rotation")
    return tuple(flags)


def hourly_counts(
    frame: pd.DataFrame, key_id: str, since: datetime, hours: int, column: str = "requests"
) -> list[int]:
    """``hours`` values of ``column`` for ``key_id``, one per hour from ``since`` (zeros where
    nothing was counted): a sparkline's points, from a :func:`usage_series` frame."""
    import pandas as pd

    start = int(since.timestamp()) // HOUR
    values = [0] * hours
    if frame.empty:
        return values
    rows = frame[frame["key_id"] == key_id]
    for hour, value in zip(rows["hour"], rows[column], strict=True):
        index = int(pd.Timestamp(hour).timestamp()) // HOUR - start
        if 0 <= index < hours:
            values[index] += int(value)
    return values
