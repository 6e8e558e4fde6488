"""Restoring a backup: verify, stage, check, safety backup, then one atomic switch.

The steps, in order, and what each one guarantees:

1. Extract the archive into a staging directory beside the data (same filesystem, so the
   switch is a rename), recomputing every member's SHA-256 as it streams: a damaged backup
   is refused here, before anything live is touched.
2. Check the staged copy: every index opens and answers a query with the manifest's document
   counts, and the dumped rows match the manifest's row counts.
3. Take a safety backup of the current state (unless told not to).
4. Switch, in one database transaction: load the rows, then install the staged layers as the
   memory store's new generation (one pointer-file rename; running processes see it on their
   next operation). If the layer switch fails the transaction rolls back; if the commit fails
   after it, the previous layers are switched back.

A disk that fills during staging, a failed check or a refused backup leaves the live data as
it was. The staging directory is always removed. Only one restore runs per data directory.
"""

from __future__ import annotations

import fcntl
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from jamey_engine.errors import BackupCorrupt, Busy, JameyError, Unavailable
from jamey_engine.fsutil import is_no_space, remove_tree
from jamey_engine.keys.security_state import merge_keys
from jamey_engine.models import ApiKey, KeyEvent, Operation
from jamey_engine.progress import Progress, no_progress
from jamey_engine.vault.catalog import (
    KEYS_TABLE,
    RESTORE_PREVIOUS_PREFIX,
    RESTORE_STAGING_PREFIX,
    RestorePlan,
)
from jamey_engine.vault.manifest import DATABASE_NAME, Manifest, check_backup_id

if TYPE_CHECKING:
    from jamey_engine.vault.core import Vault

LOCK_NAME = ".restore.lock"


def plan_restore(vault: Vault, backup_id: str) -> RestorePlan:
    """Documents per layer, keys and rows per table, now against the backup. Changes nothing."""
    info = vault.get(backup_id)
    sizes = vault.memory.sizes()
    now_docs = {layer: size.documents for layer, size in sizes.layers.items()}
    layers = {
        layer: (now_docs.get(layer, 0), info.documents.get(layer, 0))
        for layer in dict.fromkeys([*now_docs, *info.documents])
    }
    counts = vault.db.count_rows()
    tables = {
        table: (counts.get(table, 0), info.tables.get(table, 0))
        for table in dict.fromkeys([*counts, *info.tables])
    }
    keys = (counts.get(KEYS_TABLE, 0), info.keys)
    return RestorePlan(
        backup_id=info.id, layers=layers, keys=keys, tables=tables, dry_run=True, signed=info.signed
    )


@contextmanager
def _restore_lock(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another restore is running on {data_dir}; try again when it has finished") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_leftovers(data_dir: Path) -> None:
    """Remove staging of earlier restores that died (we hold the restore lock, so none is live)."""
    for path in data_dir.iterdir():
        if path.name.startswith((RESTORE_STAGING_PREFIX, RESTORE_PREVIOUS_PREFIX)):
            remove_tree(path)


def _check_rows(staging: Path, manifest: Manifest) -> dict[str, list[dict[str, Any]]]:
    """The dumped rows from the staged database.json, after checking their counts."""
    try:
        data = json.loads((staging / DATABASE_NAME).read_bytes())
        rows = data["tables"]
        if not isinstance(rows, dict):
            raise TypeError("tables is not an object")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BackupCorrupt(f"{DATABASE_NAME} cannot be read: {err}", file=DATABASE_NAME) from None
    for table, expected in manifest.tables.items():
        found = len(rows.get(table, []))
        if found != expected:
            raise BackupCorrupt(
                f"{DATABASE_NAME}: table {table} has {found} rows but the manifest says {expected}",
                file=DATABASE_NAME,
            )
    return rows


def _check_layers(vault: Vault, layers_dir: Path, manifest: Manifest) -> None:
    for layer in manifest.documents:
        (layers_dir / layer).mkdir(parents=True, exist_ok=True)
    found = vault.memory.validate_layers(layers_dir)
    for layer, expected in manifest.documents.items():
        if found.get(layer) != expected:
            raise BackupCorrupt(
                f"layer {layer}: the restored index holds {found.get(layer)} documents but the "
                f"manifest says {expected}",
                file=f"memory/{layer}",
            )


def _switch(
    vault: Vault,
    rows: dict[str, list[dict[str, Any]]],
    layers_dir: Path,
    previous: Path,
    reenable_keys: bool = False,
) -> float:
    """Load the rows and install the layers in one transaction; undo the layers if the commit fails.

    Returns the time (epoch seconds) the new layers were installed.

    The operation log is kept as it is: it is the history of what happened (it feeds the
    /metrics counters), so a restore brings back keys and their audit trail, not old history.
    Keys keep today's security state and the key audit is appended to, never replaced (see
    ``keys.security_state.merge_keys``; ``reenable_keys`` brings stopped keys back).
    """
    kept = {"operations": Operation.__table__}
    current = {"api_keys": ApiKey.__table__, "key_events": KeyEvent.__table__}
    # Hard links of the current layers: the way back if the database commit fails after the switch.
    vault.memory.snapshot(previous)
    switched = False
    try:
        with vault.db.engine.begin() as conn:
            rows = dict(rows)
            # Take the write lock first: on SQLite (WAL) a transaction that read before writing
            # fails at once if another process committed in between, instead of waiting its turn.
            conn.execute(sa.update(Operation).where(sa.false()).values(kind="restore"))
            for name, table in kept.items():
                rows[name] = [dict(row) for row in conn.execute(sa.select(*table.c)).mappings()]
            now = {
                name: [dict(r) for r in conn.execute(sa.select(*t.c)).mappings()]
                for name, t in current.items()
            }
            merged = merge_keys(
                now["api_keys"],
                rows.get("api_keys", []),
                now["key_events"],
                rows.get("key_events", []),
                reenable_keys=reenable_keys,
            )
            rows["api_keys"], rows["key_events"] = merged.keys, merged.events
            vault.db.load(rows, connection=conn)
            vault.memory.restore_layers(layers_dir)
            switched = True
            switched_at = time.time()
    except BaseException as err:
        if not switched:
            raise
        try:
            vault.memory.restore_layers(previous)
        except Exception as undo:
            raise JameyError(
                f"restore failed after the memory layers were switched ({err}), and switching them "
                f"back failed too ({undo}); restore the safety backup"
            ) from None
        raise JameyError(
            f"restore failed while committing the database ({err}); the memory layers were "
            "switched back, nothing changed"
        ) from None
    return switched_at


def restore(
    vault: Vault,
    backup_id: str,
    *,
    progress: Progress | None = None,
    safety_backup: bool = True,
    actor: str | None = None,
    reenable_keys: bool = False,
    trust_unsigned: bool = False,
) -> RestorePlan:
    """Restore ``backup_id`` (see the module docstring); return the plan with the safety backup id.

    Keys revoked or rotated since the backup stay so unless ``reenable_keys``. An unsigned backup
    (made before backups were signed) is refused with BackupUnsigned unless ``trust_unsigned``
    (an admin's decision, recorded with the restore in the operation log).

    Raises InvalidInput/NotFound for a bad id, BackupCorrupt (naming the file) for a damaged
    backup, Busy when another restore runs, Unavailable when the disk fills while staging;
    in every such case the live data is unchanged. Every attempt is recorded in the oplog.
    """
    started = time.monotonic()
    try:
        plan = _restore(
            vault,
            check_backup_id(backup_id),
            progress or no_progress,
            safety_backup,
            actor,
            reenable_keys,
            trust_unsigned,
        )
    except BaseException as err:
        detail = err.message if isinstance(err, JameyError) else f"{type(err).__name__}: {err}"
        vault.record("restore", "failure", started, detail=f"{backup_id}: {detail}", actor=actor)
        raise
    info = vault.get(backup_id)
    detail = backup_id if plan.signed else f"{backup_id} (unsigned, trusted with --trust-unsigned)"
    vault.record("restore", "success", started, size_bytes=info.size_bytes, detail=detail, actor=actor)
    return plan


def _restore(
    vault: Vault,
    backup_id: str,
    progress: Progress,
    safety_backup: bool,
    actor: str | None,
    reenable_keys: bool,
    trust_unsigned: bool,
) -> RestorePlan:
    data_dir = vault.settings.data_dir
    plan = plan_restore(vault, backup_id)
    with _restore_lock(data_dir):
        _clean_leftovers(data_dir)
        tag = f"{backup_id}-{secrets.token_hex(3)}"
        staging = data_dir / f"{RESTORE_STAGING_PREFIX}{tag}"
        previous = data_dir / f"{RESTORE_PREVIOUS_PREFIX}{tag}"
        try:
            staging.mkdir()
            manifest = vault.scan(
                backup_id,
                progress,
                extract_to=staging,
                stage="extracting and verifying",
                trust_unsigned=trust_unsigned,
            )
            progress(0, 0, "checking the staged copy")
            rows = _check_rows(staging, manifest)
            _check_layers(vault, staging / "memory", manifest)
            safety_id = None
            if safety_backup:
                safety = vault.create(
                    progress, label=f"safety backup before restoring {backup_id}", actor=actor
                )
                safety_id = safety.id
            progress(0, 0, "switching")
            switched_at = _switch(vault, rows, staging / "memory", previous, reenable_keys)
        except OSError as err:
            if is_no_space(err):
                raise Unavailable(
                    f"no space left on device while staging backup {backup_id} in {data_dir}; "
                    "the live data is unchanged"
                ) from None
            raise Unavailable(
                f"restore of {backup_id} failed: {err.strerror or err}; the live data is unchanged"
            ) from None
        finally:
            remove_tree(staging)
            remove_tree(previous)
    signed = vault.get(backup_id).signed
    return replace(plan, safety_backup_id=safety_id, dry_run=False, switched_at=switched_at, signed=signed)
