"""Tiered backup retention with restic's semantics, and why each backup is kept.

A policy keeps the newest backup always, the newest ``last`` backups, those younger than
``days`` days, and, counting back from the newest, the newest backup of each of the last
``daily`` days, ``weekly`` ISO weeks and ``monthly`` months that hold a backup (restic's
``forget --keep-daily/--keep-weekly/--keep-monthly``). Local backups and the remote's copies
have a policy each (JAMEY_BACKUP_KEEP_* and JAMEY_BACKUP_REMOTE_KEEP_*, the latter defaulting
to the former). A policy of all zeros keeps everything (JAMEY_BACKUP_KEEP=0 as before).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from jamey_engine.config import Settings
from jamey_engine.durations import days_before


@dataclass(frozen=True)
class Policy:
    """How many backups each rule keeps (0: the rule is off)."""

    last: int = 0
    days: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    @property
    def keeps_everything(self) -> bool:
        """True when no rule is set: nothing is ever deleted."""
        return not (self.last or self.days or self.daily or self.weekly or self.monthly)

    @classmethod
    def from_settings(cls, settings: Settings, *, remote: bool = False) -> Policy:
        """The local policy (JAMEY_BACKUP_KEEP, _KEEP_DAYS, _KEEP_DAILY, _KEEP_WEEKLY,
        _KEEP_MONTHLY), or with ``remote`` the remote's (JAMEY_BACKUP_REMOTE_KEEP_*, each
        defaulting to its local value)."""
        local = cls(
            settings.backup_keep,
            settings.backup_keep_days,
            settings.backup_keep_daily,
            settings.backup_keep_weekly,
            settings.backup_keep_monthly,
        )
        if not remote:
            return local

        def pick(value: int | None, default: int) -> int:
            return default if value is None else value

        return cls(
            pick(settings.backup_remote_keep, local.last),
            pick(settings.backup_remote_keep_days, local.days),
            pick(settings.backup_remote_keep_daily, local.daily),
            pick(settings.backup_remote_keep_weekly, local.weekly),
            pick(settings.backup_remote_keep_monthly, local.monthly),
        )


@dataclass(frozen=True)
class Decision:
    """One backup in a retention plan: kept (with every reason) or to be deleted."""

    id: str
    created_at: datetime
    reasons: tuple[str, ...]

    @property
    def keep(self) -> bool:
        """True when at least one rule keeps the backup."""
        return bool(self.reasons)


def _day(at: datetime) -> str:
    return at.date().isoformat()


def _week(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


def _month(at: datetime) -> str:
    return f"{at.year}-{at.month:02d}"


def plan(backups: Sequence[tuple[str, datetime]], policy: Policy, now: datetime) -> list[Decision]:
    """Every backup ``(id, created_at)``, newest first, with the reasons it is kept ("newest",
    "last 7", "within 30 days", "daily 2026-12-05", "weekly 2026-W48", "monthly 2026-11", or
    "keep everything") or none when it would be deleted."""
    ordered = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    reasons: dict[str, list[str]] = {backup_id: [] for backup_id, _ in ordered}
    if policy.keeps_everything:
        return [Decision(backup_id, at, ("keep everything",)) for backup_id, at in ordered]
    if ordered:
        reasons[ordered[0][0]].append("newest")
    for backup_id, _ in ordered[: policy.last]:
        reasons[backup_id].append(f"last {policy.last}")
    if policy.days:
        cutoff = days_before(now, policy.days)
        for backup_id, at in ordered:
            if at > cutoff:
                reasons[backup_id].append(f"within {policy.days} days")
    tiers: tuple[tuple[str, int, Callable[[datetime], str]], ...] = (
        ("daily", policy.daily, _day),
        ("weekly", policy.weekly, _week),
        ("monthly", policy.monthly, _month),
    )
    for name, count, bucket_of in tiers:
        seen: set[str] = set()
        for backup_id, at in ordered:  # newest first: the first of a bucket is its newest
            if len(seen) >= count:
                break
            bucket = bucket_of(at)
            if bucket not in seen:
                seen.add(bucket)
                reasons[backup_id].append(f"{name} {bucket}")
    return [Decision(backup_id, at, tuple(reasons[backup_id])) for backup_id, at in ordered]
