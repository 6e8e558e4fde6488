"""The restore steps: list and verify backups, diff against now, restore when confirmed, verify.

``notebooks/restore_backup.ipynb`` uses them through ``runbooks.steps.RestoreRunbook``, and the
plan contract's restore action picks its backup with :func:`choose_backup`. The vault's restore takes the
safety backup itself; this module decides whether to call it and checks the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from jamey_engine.errors import BackupCorrupt, NotFound
from jamey_engine.preflight.checks import Check, Checks, Decision, decide
from jamey_engine.progress import Progress
from jamey_engine.sizes import format_bytes

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.vault import BackupInfo, RestorePlan


def backups_frame(backups: list[BackupInfo]) -> pd.DataFrame:
    """One row per backup, newest first: id, created_at, size, status, documents, keys."""
    rows = [
        {
            "id": b.id,
            "created_at": b.created_at,
            "size": format_bytes(b.size_bytes),
            "status": b.status,
            "documents": sum(b.documents.values()),
            "keys": b.keys,
            "label": b.label,
        }
        for b in sorted(backups, key=lambda b: b.created_at, reverse=True)
    ]
    return pd.DataFrame(rows, columns=["id", "created_at", "size", "status", "documents", "keys", "label"])


def choose_backup(engine: Engine, backup_id: str = "") -> BackupInfo:
    """The backup named ``backup_id``, or the latest when it is empty.

    Raises NotFound when there is no such backup (or none at all), InvalidInput for a malformed id.
    """
    wanted = (backup_id or "").strip()
    if wanted:
        return engine.vault.get(wanted)
    latest = engine.vault.latest()
    if latest is None:
        raise NotFound(
            f"there are no backups in {engine.settings.backup_dir}; take one with `jamey backup create`"
        )
    return latest


@dataclass(frozen=True)
class RestoreRunPlan:
    """The backup chosen, whether it verified, and how it differs from now."""

    backup: BackupInfo
    verified: bool
    problem: str | None
    damaged_file: str | None
    diff: RestorePlan | None

    @property
    def phrase(self) -> str:
        """The exact text ``confirm`` must hold to restore this backup."""
        return f"restore {self.backup.id}"

    def to_frame(self) -> pd.DataFrame:
        """One row per layer (and ``keys``): now, in the backup, and the change a restore makes."""
        if self.diff is None:
            return pd.DataFrame(columns=["what", "now", "backup", "change"])
        rows = [
            {"what": layer, "now": now, "backup": then, "change": then - now}
            for layer, (now, then) in self.diff.layers.items()
        ]
        now_keys, backup_keys = self.diff.keys
        rows.append(
            {"what": "keys", "now": now_keys, "backup": backup_keys, "change": backup_keys - now_keys}
        )
        return pd.DataFrame(rows, columns=["what", "now", "backup", "change"])


def plan_restore(engine: Engine, backup_id: str = "", progress: Progress | None = None) -> RestoreRunPlan:
    """Choose the backup, verify it, and diff it against now; changes nothing.

    A damaged backup is not an exception here: the plan says so (``verified`` False, the
    ``problem`` and the ``damaged_file``) and the apply step refuses it. Raises NotFound
    when there is no such backup.
    """
    backup = choose_backup(engine, backup_id)
    try:
        verified = engine.vault.verify(backup.id, progress=progress)
    except BackupCorrupt as err:
        return RestoreRunPlan(backup, False, err.message, err.file, None)
    return RestoreRunPlan(verified, True, None, None, engine.vault.plan_restore(backup.id))


@dataclass(frozen=True)
class RestoreOutcome:
    """What the apply step did: the decision, the safety backup, and the restore's plan."""

    decision: Decision
    plan: RestoreRunPlan
    safety_backups: tuple[str, ...] = ()
    duration_seconds: float = 0.0

    @property
    def applied(self) -> bool:
        return self.decision.go


def apply_restore(
    engine: Engine,
    plan: RestoreRunPlan,
    *,
    dry_run: bool,
    confirm: object,
    progress: Progress | None = None,
) -> RestoreOutcome:
    """Restore the planned backup, only when it verified, not ``dry_run`` and ``confirm`` matches.

    The vault takes a safety backup of now first and records the restore in the oplog. A
    refusal and a dry run change nothing. Raises BackupCorrupt (the vault checks again),
    Busy or StorageCorrupt from the restore.
    """
    blocked = None
    if not plan.verified:
        where = f" ({plan.damaged_file})" if plan.damaged_file else ""
        blocked = f"backup {plan.backup.id} is damaged{where}: {plan.problem}."
    decision = decide(action="restore", phrase=plan.phrase, dry_run=dry_run, confirm=confirm, blocked=blocked)
    if not decision.go:
        return RestoreOutcome(decision, plan)
    started = time.monotonic()
    result = engine.vault.restore(plan.backup.id, progress=progress, safety_backup=True, actor="runbook")
    duration = time.monotonic() - started
    safety = (result.safety_backup_id,) if result.safety_backup_id else ()
    return RestoreOutcome(decision, plan, safety, duration)


def verify_restore(engine: Engine, outcome: RestoreOutcome) -> Checks:
    """Check, changing nothing, that the data now matches the backup (applied) or is unchanged (not).

    Applied: every layer's documents and the key count equal the backup's. Not applied: they
    equal what the plan saw as now.
    """
    plan = outcome.plan
    if plan.diff is None:
        return Checks("Verification", (Check("nothing restored", True, "the backup did not verify"),))
    now = engine.vault.plan_restore(plan.backup.id)
    checks: list[Check] = []
    for layer, (current, in_backup) in now.layers.items():
        target = in_backup if outcome.applied else plan.diff.layers[layer][0]
        checks.append(
            Check(
                f"{layer}: documents",
                current == target,
                f"{current} now, {in_backup} in the backup"
                + ("" if outcome.applied else f", {plan.diff.layers[layer][0]} before"),
            )
        )
    keys_now, keys_backup = now.keys
    target = keys_backup if outcome.applied else plan.diff.keys[0]
    checks.append(Check("keys", keys_now == target, f"{keys_now} now, {keys_backup} in the backup"))
    before_tables = plan.diff.tables or {}
    for table, (rows_now, rows_backup) in (now.tables or {}).items():
        if table not in before_tables:
            continue
        # The restore itself adds oplog rows after loading the backup's, so that table only grows.
        target = rows_backup if outcome.applied else before_tables[table][0]
        ok = rows_now >= target if table == "operations" or not outcome.applied else rows_now == target
        checks.append(Check(f"table {table}", ok, f"{rows_now} rows now, {rows_backup} in the backup"))
    return Checks("Verification", tuple(checks))
