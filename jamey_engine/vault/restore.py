"""Restoring a backup: verify, stage, check, safety backup, then one atomic switch.

The steps, in order, and what each one guarantees:

1. Extract the archive into a staging directory beside the data (same filesystem, so the
   switch is a rename), recomputing every member's SHA-256 as it streams: a damaged backup
   is refused here, before anything live is touched.
2. Check the staged copy: every index opens and answers a query with the manifest's document
   counts, and the dumped rows match the manifest's row counts.
3. Take a safety backup of the current state (unless told not to).
4. Switch, journalled (see ``restore_journal``): the staged layers become new generations
   beside the current ones and the current rows are copied (the way back); then in one
   database transaction the rows are loaded with the restore's own success row, CURRENT is
   switched (one pointer-file rename; running processes see it on their next operation), and
   the transaction commits: the point of no return. A failure before it puts everything back;
   a SIGKILL anywhere is finished by the next start, forward or back, never a mix.
5. Verify the new state (documents per layer against the manifest); only then is the way back
   (the previous generations and the rows' copy) removed.

A disk that fills during staging, a failed check or a refused backup leaves the live data as
it was. The staging directory is always removed. Only one restore runs per data directory.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from jamey_engine.durations import utcnow
from jamey_engine.errors import BackupCorrupt, Busy, JameyError, Unavailable
from jamey_engine.fsutil import fsync_path, is_no_space, remove_tree
from jamey_engine.keys.security_state import merge_keys
from jamey_engine.memory.portable import stage_generations, switch_generations
from jamey_engine.models import ApiKey, KeyEvent, Operation
from jamey_engine.progress import Progress, no_progress
from jamey_engine.vault import restore_journal as journal_steps
from jamey_engine.vault.catalog import (
    KEYS_TABLE,
    RESTORE_PREVIOUS_PREFIX,
    RESTORE_STAGING_PREFIX,
    RestorePlan,
)
from jamey_engine.vault.manifest import DATABASE_NAME, Manifest, check_backup_id
from jamey_engine.vault.restore_journal import JOURNAL_NAME, Journal, signals_held, write_journal

if TYPE_CHECKING:
    from jamey_engine.vault.core import Vault

LOCK_NAME = journal_steps.LOCK_NAME


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
    with journal_steps.restore_lock(data_dir) as held:
        if not held:
            raise Busy(f"another restore is running on {data_dir}; try again when it has finished")
        yield


def _clean_leftovers(data_dir: Path) -> None:
    """Remove staging of earlier restores that died (we hold the restore lock, so none is live)."""
    for path in journal_steps.leftovers(data_dir):
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


def _load_rows(
    vault: Vault, conn: sa.Connection, rows: dict[str, list[dict[str, Any]]], reenable_keys: bool
) -> None:
    """Replace the rows in ``conn``'s open transaction, keeping the operation log and today's
    key security state.

    The operation log is kept as it is: it is the history of what happened (it feeds the
    /metrics counters), so a restore brings back keys and their audit trail, not old history.
    Keys keep today's security state and the key audit is appended to, never replaced (see
    ``keys.security_state.merge_keys``; ``reenable_keys`` brings stopped keys back).
    """
    kept = {"operations": Operation.__table__}
    current = {"api_keys": ApiKey.__table__, "key_events": KeyEvent.__table__}
    rows = dict(rows)
    # Take the write lock first: on SQLite (WAL) a transaction that read before writing
    # fails at once if another process committed in between, instead of waiting its turn.
    conn.execute(sa.update(Operation).where(sa.false()).values(kind="restore"))
    for name, table in kept.items():
        rows[name] = [dict(row) for row in conn.execute(sa.select(*table.c)).mappings()]
    now = {name: [dict(r) for r in conn.execute(sa.select(*t.c)).mappings()] for name, t in current.items()}
    merged = merge_keys(
        now["api_keys"],
        rows.get("api_keys", []),
        now["key_events"],
        rows.get("key_events", []),
        reenable_keys=reenable_keys,
    )
    rows["api_keys"], rows["key_events"] = merged.keys, merged.events
    vault.db.load(rows, connection=conn)


def _write_way_back(vault: Vault, way_back: Path) -> None:
    """The rows as they are now, durably: with the previous generations, the way back."""
    way_back.mkdir()
    path = way_back / DATABASE_NAME
    data = json.dumps({"dialect": vault.db.dialect, "tables": vault.db.dump()}, separators=(",", ":"))
    with open(path, "wb") as handle:
        handle.write(data.encode())
        handle.flush()
        os.fsync(handle.fileno())
    fsync_path(way_back)


def _switch(
    vault: Vault,
    backup_id: str,
    rows: dict[str, list[dict[str, Any]]],
    layers_dir: Path,
    way_back: Path,
    manifest: Manifest,
    record: dict[str, Any],
    reenable_keys: bool = False,
) -> float:
    """Switch layers and rows as one (see ``restore_journal``); returns the epoch seconds the
    new layers were installed. Before the commit any failure rolls everything back; after it
    the new state is verified against ``manifest`` (a mismatch puts the way back in place).
    """
    store = vault.memory
    gens = store.generations
    memory_dir = gens.root
    # Acknowledged writes go into the current generations first: a roll back loses none.
    store.flush()
    _write_way_back(vault, way_back)
    with gens.building():  # until the journal pins them, no sweep may take the staged ones
        staged = stage_generations(store, layers_dir, validated=True)
        previous = gens.read()
        journal = Journal.new(
            backup_id, record["detail"], {layer: previous[layer] for layer in staged}, staged, way_back
        )
        try:
            write_journal(memory_dir, journal)
        except BaseException:
            for layer, name in staged.items():
                gens.remove_generation(layer, name)
            raise
    journal_steps.step("generations-prepared")
    switched = committing = False
    try:
        with vault.db.engine.connect() as conn:
            transaction = conn.begin()
            try:
                _load_rows(vault, conn, rows, reenable_keys)
                conn.execute(
                    sa.insert(Operation).values(
                        at=utcnow(),
                        kind="restore",
                        status="success",
                        duration_seconds=time.monotonic() - record["started"],
                        size_bytes=record["size_bytes"],
                        detail=journal.marker,
                        actor=(record["actor"] or None) and record["actor"][:100],
                    )
                )
                journal_steps.step("rows-loaded")
                switch_generations(store, {**gens.read(), **staged}, discard_log=True)
                switched = True
                switched_at = time.time()
                journal_steps.step("layers-switched")
                journal.phase = "committing"
                write_journal(memory_dir, journal)
                committing = True
                with signals_held():
                    transaction.commit()  # the point of no return
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                raise
    except BaseException as err:
        # A commit whose answer was lost may still have happened: the marker row says.
        if committing and journal_steps.committed(vault.db, journal):
            with signals_held():
                _finish(vault, journal, manifest)
            return switched_at
        try:
            journal_steps.roll_back(store, journal, memory_dir)
        except Exception as undo:
            raise JameyError(
                f"restore failed after the memory layers were switched ({err}), and switching them "
                f"back failed too ({undo}); the next start retries (journal {memory_dir / JOURNAL_NAME})"
            ) from None
        if not switched:
            raise
        raise JameyError(
            f"restore failed while committing the database ({err}); the memory layers were "
            "switched back, nothing changed"
        ) from None
    with signals_held():  # past the point of no return a cancel waits for the end
        _finish(vault, journal, manifest)
    return switched_at


def _finish(vault: Vault, journal: Journal, manifest: Manifest) -> None:
    """After the commit: verify the new state, then drop the way back (or, when the check fails,
    put it back: previous generations and rows, and the marker row removed)."""
    store = vault.memory
    memory_dir = store.generations.root
    journal.phase = "committed"
    write_journal(memory_dir, journal)
    journal_steps.step("committed")
    found = {layer: store.count(layer) for layer in manifest.documents}
    wrong = {
        layer: (n, manifest.documents[layer]) for layer, n in found.items() if n != manifest.documents[layer]
    }
    if wrong:
        _put_way_back(vault, journal)
        detail = ", ".join(
            f"{layer}: {n} documents, the manifest says {want}" for layer, (n, want) in wrong.items()
        )
        raise JameyError(f"the restored state did not verify ({detail}); the previous state was put back")
    journal_steps.step("verified")
    journal_steps.roll_forward(store, journal, memory_dir)
    journal_steps.step("cleaned")


def _put_way_back(vault: Vault, journal: Journal) -> None:
    data = json.loads((Path(journal.way_back) / DATABASE_NAME).read_bytes())
    rows = data["tables"]
    ops = Operation.__table__
    with vault.db.engine.begin() as conn:
        conn.execute(sa.delete(Operation).where(ops.c.kind == "restore", ops.c.detail == journal.marker))
        rows["operations"] = [dict(row) for row in conn.execute(sa.select(*ops.c)).mappings()]
        vault.db.load(rows, connection=conn)
    journal_steps.roll_back(vault.memory, journal, vault.memory.generations.root)


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
            started,
        )
    except BaseException as err:
        detail = err.message if isinstance(err, JameyError) else f"{type(err).__name__}: {err}"
        vault.record("restore", "failure", started, detail=f"{backup_id}: {detail}", actor=actor)
        raise
    # The success row was written in the restore's own transaction (its commit is the point
    # of no return); the event is published now.
    if vault.events is not None:
        try:
            vault.events.publish(
                "restore",
                {
                    "status": "success",
                    "duration_seconds": round(time.monotonic() - started, 3),
                    "detail": backup_id,
                },
            )
        except Exception:
            logging.getLogger(__name__).warning("could not publish the restore event", exc_info=True)
    return plan


def _restore(
    vault: Vault,
    backup_id: str,
    progress: Progress,
    safety_backup: bool,
    actor: str | None,
    reenable_keys: bool,
    trust_unsigned: bool,
    started: float,
) -> RestorePlan:
    data_dir = vault.settings.data_dir
    plan = plan_restore(vault, backup_id)
    with _restore_lock(data_dir):
        journal_steps.recover_locked(vault.memory, vault.db, vault.memory.generations.root)
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
            journal_steps.step("staged")
            safety_id = None
            if safety_backup:
                safety = vault.create(
                    progress, label=f"safety backup before restoring {backup_id}", actor=actor
                )
                safety_id = safety.id
            journal_steps.step("safety-backup")
            progress(0, 0, "switching")
            info = vault.get(backup_id)
            record = {
                "started": started,
                "actor": actor,
                "size_bytes": info.size_bytes,
                "detail": backup_id
                if info.signed
                else f"{backup_id} (unsigned, trusted with --trust-unsigned)",
            }
            switched_at = _switch(
                vault, backup_id, rows, staging / "memory", previous, manifest, record, reenable_keys
            )
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
            if not journal_steps.journal_path(vault.memory.generations.root).exists():
                remove_tree(previous)  # else the next start needs it (see restore_journal)
    signed = vault.get(backup_id).signed
    return replace(plan, safety_backup_id=safety_id, dry_run=False, switched_at=switched_at, signed=signed)
