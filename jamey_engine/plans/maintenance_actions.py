"""Actions that keep the store healthy rather than remove data: ``backup`` (take a backup and
verify it) and ``memory-flush`` (move the layers' write-ahead logs into their indexes).

Neither deletes anything, but both write (a new archive; a commit to every flushed index), so
they go through the same contract as the others: a preflight, a plan with a digest, an apply
that re-checks it, a verify step and one operation-log record. The remediation runbooks of the
backup alerts (``take_backup``) and of ``JameyMemoryLogNotFlushing`` (``flush_memory_log``) use them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jamey_engine.errors import JameyError
from jamey_engine.growth import format_bytes
from jamey_engine.plans.actions import Action, Change, Parameter, Preview, parse_text, register
from jamey_engine.preflight.checks import Check, Checks

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.progress import Progress

# The database's part of a backup is its rows as JSON: small beside the indexes, but not nothing.
DATABASE_ALLOWANCE = 16 * 1024 * 1024


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _layers(value: Any) -> list[str]:
    from jamey_engine.preflight.prune_steps import parse_layers

    return list(parse_layers(value if isinstance(value, (list, tuple)) else str(value)))


def backup_preflight(engine: Engine) -> Checks:
    """Check, changing nothing, that a backup can be taken now: the backup directory exists (or
    can be made) and is writable, its disk has room for the memory indexes plus the database,
    and the encryption settings (JAMEY_BACKUP_RECIPIENTS / _PASSPHRASE_FILE) can be read.
    Problems become failed checks, not exceptions; no secret is shown."""
    settings = engine.settings
    where = Path(settings.backup_dir)
    checks: list[Check] = []
    parent = _existing(where)
    if where.exists():
        writable = where.is_dir() and os.access(where, os.W_OK | os.X_OK)
        detail = "exists and is writable" if writable else "exists but is not a writable directory"
    else:
        writable = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
        detail = f"does not exist yet; {parent} {'is' if writable else 'is not'} writable, to create it"
    checks.append(Check(f"backup directory {where}", writable, detail))
    try:
        needed = engine.memory.sizes().total_bytes + DATABASE_ALLOWANCE
    except JameyError as err:
        checks.append(Check("memory indexes open", False, err.message))
        needed = DATABASE_ALLOWANCE
    free = shutil.disk_usage(parent).free
    checks.append(
        Check(
            f"free disk at {parent}",
            free >= needed,
            f"{format_bytes(free)} free, {format_bytes(needed)} needed (the indexes and the database)",
        )
    )
    try:
        keys = engine.vault.backup_keys()
    except JameyError as err:
        checks.append(Check("encryption settings", False, err.message))
    else:
        if keys.recipients:
            detail = f"encrypted to {len(keys.recipients)} age recipient(s)"
        elif keys.passphrase is not None:
            detail = "encrypted with the passphrase of JAMEY_BACKUP_PASSPHRASE_FILE"
        else:
            detail = "not encrypted (no JAMEY_BACKUP_RECIPIENTS or JAMEY_BACKUP_PASSPHRASE_FILE set)"
        checks.append(Check("encryption settings", True, detail))
    return Checks("Preflight", tuple(checks))


class BackupAction(Action):
    name = "backup"
    scope = "ops:write"
    backup_first = False  # it is the backup
    description = "Take a backup of the memory layers and the database, then verify it."
    parameters = (Parameter("label", "a note kept with the backup", parse_text("label"), default=""),)

    def preflight(self, engine: Engine, params: dict[str, Any]) -> Checks:
        return backup_preflight(engine)

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        sizes = engine.memory.sizes()
        latest = engine.vault.latest()
        layers = [
            {"layer": layer, "documents": size.documents, "bytes": size.bytes}
            for layer, size in sizes.layers.items()
        ]
        summary = {
            "backup_dir": str(engine.settings.backup_dir),
            "layers": layers,
            "total_bytes": sizes.total_bytes,
            "latest_backup": latest.id if latest else None,
            "latest_backup_at": latest.created_at.isoformat() if latest else None,
        }
        # What it acts on: the newest backup it saw. A backup taken by anyone meanwhile makes
        # the plan stale (two people answering one alert take one backup, not two).
        state = [latest.id if latest else None]
        return Preview(summary, state, "take a backup")

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        info = engine.vault.create(progress, label=params["label"] or "taken through a plan", actor=actor)
        result = {
            "backup_id": info.id,
            "size_bytes": info.size_bytes,
            "encrypted": bool(getattr(info, "encrypted", False)),
            "documents": dict(info.documents),
        }
        return Change(result, info, backup_id=info.id)

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        backup_id = change.native.id
        checks = []
        try:
            info = engine.vault.verify(backup_id, actor="plan")
        except JameyError as err:
            checks.append(Check(f"backup {backup_id} verifies", False, err.message))
        else:
            checks.append(
                Check(
                    f"backup {backup_id} verifies",
                    True,
                    f"signature and every file's SHA-256 match; {format_bytes(info.size_bytes)}",
                )
            )
        latest = engine.vault.latest()
        checks.append(
            Check(
                "newest backup",
                latest is not None and latest.id == backup_id,
                f"the newest backup is {latest.id if latest else 'none'}",
            )
        )
        return Checks("Verification", tuple(checks))


class MemoryFlushAction(Action):
    name = "memory-flush"
    scope = "ops:write"
    backup_first = False  # nothing is deleted: the log's records become index commits
    description = "Move every record of the layers' write-ahead logs into their indexes now."
    parameters = (Parameter("layer", "all, one layer, or a comma list of layers", _layers, default=None),)

    def check(self, raw: Any) -> dict[str, Any]:
        checked = super().check(raw)
        if checked["layer"] is None:
            checked["layer"] = _layers("all")
        return checked

    def preflight(self, engine: Engine, params: dict[str, Any]) -> Checks:
        checks = [
            Check(
                "write-ahead log in use",
                bool(engine.memory.wal),
                "on" if engine.memory.wal else "off (JAMEY_MEMORY_WAL): writes go to the index directly",
            )
        ]
        for layer in params["layer"]:
            try:
                engine.memory.count(layer)
            except JameyError as err:
                checks.append(Check(f"{layer}: index opens", False, err.message))
            else:
                checks.append(Check(f"{layer}: index opens", True, "answers a count"))
        return Checks("Preflight", tuple(checks))

    def _logs(self, engine: Engine, layers: list[str]) -> list[dict[str, Any]]:
        rows = []
        for layer in layers:
            log = engine.memory.layer_log(layer) if engine.memory.wal else None
            rows.append(
                {
                    "layer": layer,
                    "records": log.record_count() if log else 0,
                    "bytes": log.active_bytes() if log else 0,
                }
            )
        return rows

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        rows = self._logs(engine, params["layer"])
        summary = {"layers": rows, "total_records": sum(row["records"] for row in rows)}
        # Writes keep arriving while the plan waits; flushing them too is the point, so the
        # state is the layers only (a flush can never apply to a world it did not mean).
        state = list(params["layer"])
        return Preview(summary, state, f"flush the write-ahead log of {', '.join(params['layer'])}")

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        layers = params["layer"]
        flushed: dict[str, int] = {}
        for done, layer in enumerate(layers):
            progress(done, len(layers), f"flushing {layer}")
            flushed[layer] = engine.memory.flush_layer(layer)
        progress(len(layers), len(layers), "flushed")
        return Change({"flushed_records": flushed}, flushed)

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        before = {row["layer"]: row for row in preview.summary["layers"]}
        checks = []
        for row in self._logs(engine, params["layer"]):
            was = before.get(row["layer"], {"bytes": 0})
            # New writes may land in a fresh segment meanwhile; the log must not have kept what it held.
            ok = row["bytes"] <= max(was["bytes"], 0) or row["records"] <= change.native.get(row["layer"], 0)
            checks.append(
                Check(
                    f"{row['layer']}: log flushed",
                    ok,
                    f"{format_bytes(was['bytes'])} in the log before, {format_bytes(row['bytes'])} now; "
                    f"{change.native.get(row['layer'], 0)} record(s) moved into the index",
                )
            )
        return Checks("Verification", tuple(checks))


for _action in (BackupAction(), MemoryFlushAction()):
    register(_action)
