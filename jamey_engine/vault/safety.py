"""The backups' safety at a glance: off-site state, the last restore drill, unsigned backups.

One function of facts that ``jamey doctor``, the Overview page and /metrics read, so the doors
never compute them on their own. Read-only: a database that does not exist yet, or is not at
the head revision, is not created or migrated here (the facts from it are then None).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from jamey_engine.config import Settings
    from jamey_engine.db import Database

DRILL_RUNBOOK = "restore_drill"


@dataclass(frozen=True)
class BackupSafety:
    """What a reader needs to know to trust the backups."""

    remote_configured: bool  # JAMEY_BACKUP_REMOTE is set
    backups: int  # local backups
    newest_id: str | None
    newest_location: str | None  # local, remote or both
    newest_problem: str | None  # the last off-site copy's error of the newest backup
    newest_checked_at: datetime | None  # when its remote copy was last checked
    last_remote_copy_at: datetime | None  # the last copy that succeeded (any backup, any process)
    last_drill_at: datetime | None  # the last drill, passed or not
    last_drill_passed: bool | None
    last_drill_detail: str | None
    last_drill_passed_at: datetime | None
    drills_enabled: bool | None  # a restore_drill schedule exists and is not paused
    unsigned: tuple[str, ...]  # ids of the backups without a manifest signature, newest first

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (times as ISO 8601)."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in self.__dict__.items()
        } | {"unsigned": list(self.unsigned)}


@dataclass(frozen=True)
class SafetyCard:
    """One headline of the backups' safety as every page shows it: a label, the value, its level
    (ok, warning, critical) and a note saying why or what to do."""

    label: str
    text: str
    level: str
    note: str


def safety_cards(facts: BackupSafety) -> list[SafetyCard]:
    """The Overview's four backup headlines: where the newest backup is, the last remote copy,
    the last restore drill, unsigned backups (the judgement here, the page only renders)."""
    from jamey_engine.durations import format_moment

    def when(moment: datetime | None) -> str:
        return format_moment(moment) if moment else "never"

    cards = []
    if facts.newest_id is None:
        cards.append(SafetyCard("Newest backup", "none yet", "critical", "jamey backup create"))
    elif not facts.remote_configured:
        cards.append(
            SafetyCard(
                "Newest backup", "local only", "warning", "JAMEY_BACKUP_REMOTE is not set: no off-site copy"
            )
        )
    else:
        level = "ok" if facts.newest_location == "both" else "warning"
        note = f"{facts.newest_id}" + (
            f": {facts.newest_problem}" if facts.newest_problem and level != "ok" else ""
        )
        cards.append(SafetyCard("Newest backup", facts.newest_location or "local", level, note))
    if facts.remote_configured:
        cards.append(
            SafetyCard(
                "Last remote copy",
                when(facts.last_remote_copy_at),
                "ok" if facts.last_remote_copy_at else "warning",
                "copied and checked on JAMEY_BACKUP_REMOTE"
                if facts.last_remote_copy_at
                else "jamey backup push",
            )
        )
    else:
        cards.append(SafetyCard("Last remote copy", "no remote", "warning", "set JAMEY_BACKUP_REMOTE"))
    schedule = "schedule enabled" if facts.drills_enabled else "no enabled drill schedule"
    if facts.last_drill_at is None:
        cards.append(SafetyCard("Last restore drill", "never", "warning", f"{schedule}; run restore_drill"))
    elif not facts.last_drill_passed:
        cards.append(
            SafetyCard(
                "Last restore drill",
                f"failed {when(facts.last_drill_at)}",
                "critical",
                f"{schedule}; {facts.last_drill_detail}",
            )
        )
    else:
        cards.append(
            SafetyCard(
                "Last restore drill",
                f"passed {when(facts.last_drill_passed_at)}",
                "ok" if facts.drills_enabled else "warning",
                schedule,
            )
        )
    count = len(facts.unsigned)
    cards.append(
        SafetyCard(
            "Unsigned backups",
            str(count),
            "ok" if count == 0 else "warning",
            "every backup is signed"
            if count == 0
            else f"e.g. {facts.unsigned[0]}; restoring one needs --trust-unsigned",
        )
    )
    return cards


def drills_enabled(db: Database) -> bool:
    """True when a restore_drill runbook schedule exists and is not paused."""
    from jamey_engine.models import RunbookSchedule

    table = RunbookSchedule.__table__
    with db.connect() as conn:
        found = conn.execute(
            sa.select(sa.func.count()).where(table.c.runbook == DRILL_RUNBOOK, table.c.paused.is_(False))
        ).scalar_one()
    return bool(found)


def _database_facts(settings: Settings) -> dict[str, Any] | None:
    from jamey_engine.db import Database, head_revision
    from jamey_engine.oplog import recent_operations

    if settings.database_url.startswith("sqlite") and not (settings.data_dir / "jamey.db").exists():
        return None
    db = Database(settings.database_url)
    try:
        if db.current_revision() != head_revision():
            return None  # reading would migrate it; a reader only looks
        drills = recent_operations(db, limit=50, kind="drill")
        copies = recent_operations(db, limit=50, kind="offsite")
        enabled = drills_enabled(db)
    finally:
        db.close()
    passed = next((d for d in drills if d["status"] == "success"), None)
    copied = next((c for c in copies if c["status"] == "success"), None)
    last = drills[0] if drills else None
    return {
        "last_remote_copy_at": copied["at"] if copied else None,
        "last_drill_at": last["at"] if last else None,
        "last_drill_passed": (last["status"] == "success") if last else None,
        "last_drill_detail": str(last["detail"]) if last and last["detail"] is not None else None,
        "last_drill_passed_at": passed["at"] if passed else None,
        "drills_enabled": enabled,
    }


def backup_safety(settings: Settings) -> BackupSafety:
    """The facts (see BackupSafety), from the backup catalog and the operation log. Never lists
    the remote (the catalog's sidecars record each copy's state), so it is cheap and offline."""
    from jamey_engine.vault.catalog import Catalog

    catalog = Catalog(settings.backup_dir, settings.data_dir)
    infos = [info for info in map(catalog.info, catalog.ids()) if info is not None]
    infos.sort(key=lambda info: (info.created_at, info.id), reverse=True)
    newest = infos[0] if infos else None
    facts = _database_facts(settings) or {}
    last_copy = facts.get("last_remote_copy_at")
    return BackupSafety(
        remote_configured=bool(settings.backup_remote),
        backups=len(infos),
        newest_id=newest.id if newest else None,
        newest_location=newest.location if newest else None,
        newest_problem=newest.problem if newest else None,
        newest_checked_at=newest.remote_checked_at if newest else None,
        last_remote_copy_at=last_copy,
        last_drill_at=facts.get("last_drill_at"),
        last_drill_passed=facts.get("last_drill_passed"),
        last_drill_detail=facts.get("last_drill_detail"),
        last_drill_passed_at=facts.get("last_drill_passed_at"),
        drills_enabled=facts.get("drills_enabled"),
        unsigned=tuple(info.id for info in infos if not info.signed),
    )
