"""PhoenixVault: consistent backups while the service runs, verification, retention.

A backup is one ``<id>.tar.zst`` in ``settings.backup_dir``: the database rows (a portable
JSON dump), every memory layer's index files (hard-linked snapshot), and ``manifest.json``
with the SHA-256 and size of every file. With JAMEY_BACKUP_RECIPIENTS (or a passphrase) set,
it is ``<id>.tar.zst.age`` instead: that same stream, age-encrypted and so authenticated
(``crypto.py``). Restores live in ``restore.py``.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from jamey_engine import __version__, oplog
from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.errors import Busy, InvalidInput, JameyError, NotFound, Unavailable
from jamey_engine.fsutil import fsync_path, is_no_space, lock_new_file, remove_tree
from jamey_engine.progress import Progress, no_progress
from jamey_engine.vault import offsite, tiers
from jamey_engine.vault import rekey as rekey_steps
from jamey_engine.vault import restore as restore_steps
from jamey_engine.vault import verify as verify_steps
from jamey_engine.vault.archive import ArchiveWriter, ScanResult
from jamey_engine.vault.catalog import KEYS_TABLE, BackupInfo, Catalog, RestorePlan, id_time, no_space_message
from jamey_engine.vault.crypto import (
    BackupKeys,
    encrypting,
)
from jamey_engine.vault.manifest import (
    DATABASE_NAME,
    MANIFEST_NAME,
    MEMORY_PREFIX,
    SIGNATURE_NAME,
    Manifest,
    check_backup_id,
    new_backup_id,
)
from jamey_engine.vault.signing import load_signing_key
from jamey_engine.vault.tiers import Decision, Policy

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.events import EventPublisher
    from jamey_engine.memory import MemoryStore

log = logging.getLogger(__name__)


def _walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``, in a stable (sorted) order."""
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            yield Path(directory) / name


@contextmanager
def _maybe_encrypting(handle: BinaryIO, keys: BackupKeys) -> Iterator[BinaryIO]:
    """``handle`` itself, or an age-encrypting stream into it when ``keys`` encrypts."""
    if not keys.encrypts:
        yield handle
        handle.flush()
        return
    with encrypting(handle, keys) as sink:
        yield sink
    handle.flush()


class Vault:
    """Backups of one data directory and database into ``settings.backup_dir``.

    Every create and restore, successful or not, is recorded in the operation log (so the
    service's /metrics sees it whichever process ran it) and published as an event.
    """

    def __init__(
        self,
        settings: Settings,
        memory: MemoryStore,
        db: Database,
        events: EventPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.memory = memory
        self.db = db
        self.events = events
        self.catalog = Catalog(settings.backup_dir, settings.data_dir)

    # -- bookkeeping ---------------------------------------------------------------------------
    def record(self, kind: str, status: str, started: float, **fields: Any) -> None:
        """Record one vault operation (backup, restore, delete) that began at ``started``
        (monotonic seconds) in the operation log, and publish its event; best effort."""
        oplog.record(self.db, self.events, kind, status, time.monotonic() - started, **fields)

    def backup_keys(self) -> BackupKeys:
        """The encryption settings, read now (key files may change while a service runs).

        Raises ConfigError naming the variable when a key file is unreadable or malformed.
        """
        return BackupKeys.from_settings(self.settings)

    # -- create --------------------------------------------------------------------------------
    def create(
        self, progress: Progress | None = None, *, label: str = "", actor: str | None = None
    ) -> BackupInfo:
        """Take a consistent backup of the memory layers and the database; return its BackupInfo.

        Safe while the service writes: layers are hard-link snapshots taken under the layers'
        locks and the rows are read in one transaction. The archive only gets its final name
        once complete and fsynced, so a crash never leaves a listed partial backup.
        Raises Unavailable when the backup directory is not writable or the disk is full
        ("no space left on device while writing backup to <dir>"); nothing is left behind then.
        """
        started = time.monotonic()
        try:
            info = self._create(progress or no_progress, label)
        except BaseException as err:
            detail = err.message if isinstance(err, JameyError) else f"{type(err).__name__}: {err}"
            self.record("backup", "failure", started, detail=detail, actor=actor)
            raise
        self.record("backup", "success", started, size_bytes=info.size_bytes, detail=info.id, actor=actor)
        # Off-site copies (this one, and earlier ones whose retry is due); a remote failure is
        # recorded and retried later, never a failed backup.
        try:
            offsite.sync(self, actor=actor)
        except Exception:
            log.warning("off-site copy after backup %s failed", info.id, exc_info=True)
        return self.catalog.info(info.id) or info

    def _create(self, progress: Progress, label: str) -> BackupInfo:
        backup_dir = self.settings.backup_dir
        try:
            backup_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise Unavailable(f"cannot create the backup directory {backup_dir}: {err.strerror}") from None
        keys = self.backup_keys()
        signer = load_signing_key(self.settings)
        self.catalog.clean_stale()
        now = utcnow()
        backup_id = new_backup_id(now)
        partial = self.catalog.partial_path(backup_id)
        staging = self.catalog.staging_path(backup_id)
        archive = self.catalog.archive_path(backup_id, encrypted=keys.encrypts)
        where = backup_dir
        committed = False
        fd: int | None = None
        owner: int | None = None
        try:
            fd = lock_new_file(partial)
            progress(0, 0, "snapshotting memory")
            where = self.settings.data_dir
            staging.mkdir(parents=True)
            owner = lock_new_file(self.catalog.staging_owner_path(backup_id))
            documents = dict(self.memory.snapshot(staging / "memory"))
            progress(0, 0, "exporting database")
            rows = self.db.dump()
            database = json.dumps({"dialect": self.db.dialect, "tables": rows}, separators=(",", ":"))
            database_bytes = database.encode()
            sources = list(_walk_files(staging / "memory"))
            total = len(database_bytes) + sum(path.stat().st_size for path in sources)
            done = 0
            where = backup_dir
            with open(fd, "wb", closefd=False) as handle, _maybe_encrypting(handle, keys) as sink:
                writer = ArchiveWriter(sink)
                writer.add_bytes(DATABASE_NAME, database_bytes, now.timestamp())
                done += len(database_bytes)
                for source in sources:
                    name = MEMORY_PREFIX + source.relative_to(staging / "memory").as_posix()
                    stage = f"archiving {name}"

                    def advance(count: int, stage: str = stage) -> None:
                        nonlocal done
                        done += count
                        progress(done, total, stage)

                    progress(done, total, stage)
                    writer.add_file(source, name, advance)
                manifest = Manifest(
                    id=backup_id,
                    created_at=now,
                    engine_version=__version__,
                    dialect=self.db.dialect,
                    files=tuple(writer.entries),
                    documents=documents,
                    keys=len(rows.get(KEYS_TABLE, [])),
                    tables={table: len(table_rows) for table, table_rows in rows.items()},
                    label=label,
                )
                writer.add_bytes(MANIFEST_NAME, manifest.to_json(), now.timestamp())
                writer.add_bytes(SIGNATURE_NAME, signer.signature_bytes(manifest), now.timestamp())
                writer.finish()
            progress(total, total, "syncing")
            os.fsync(fd)
            archive_size = os.fstat(fd).st_size
            remove_tree(staging)
            self.catalog.write_sidecar(
                manifest, archive_size, None, "create", signature=signer.sign(manifest)
            )
            os.replace(partial, archive)
            committed = True
            fsync_path(backup_dir)
        except BaseException as err:
            if not committed:
                remove_tree(partial)
                remove_tree(self.catalog.sidecar_temp_path(backup_id))
                remove_tree(self.catalog.sidecar_path(backup_id))
            remove_tree(staging)
            if isinstance(err, OSError):
                if is_no_space(err):
                    raise Unavailable(no_space_message(where, where != backup_dir)) from None
                raise Unavailable(
                    f"could not write backup to {where}: {err.strerror or err}"
                    + (f" ({err.filename})" if err.filename else "")
                ) from None
            raise
        finally:
            for descriptor in (owner, fd):
                if descriptor is not None:
                    os.close(descriptor)
        info = self.catalog.info(backup_id)
        assert info is not None, "the archive was just renamed into place"
        log.info("backup %s written: %d bytes", backup_id, info.size_bytes)
        return info

    # -- listing -------------------------------------------------------------------------------
    def list(self, *, include_remote: bool = False) -> list[BackupInfo]:
        """Every finished backup, newest first (removes stale leftovers of killed backups first).

        Never decompresses an archive: reads each catalog sidecar and the archive's size. With
        ``include_remote`` (and JAMEY_BACKUP_REMOTE set), backups only on the remote are listed
        too (location "remote"); raises Unavailable when the remote cannot be listed.
        """
        self.catalog.clean_stale()
        infos = [info for info in map(self.catalog.info, self.catalog.ids()) if info is not None]
        if include_remote:
            infos.extend(offsite.remote_only(self))
        return sorted(infos, key=lambda info: (info.created_at, info.id), reverse=True)

    def get(self, backup_id: str) -> BackupInfo:
        """The BackupInfo of ``backup_id``; raises InvalidInput for a malformed id, NotFound if absent."""
        info = self.catalog.info(check_backup_id(backup_id))
        if info is None:
            raise NotFound(f"backup {backup_id} does not exist in {self.settings.backup_dir}")
        return info

    def latest(self) -> BackupInfo | None:
        """The newest backup, or None when there is none."""
        infos = self.list()
        return infos[0] if infos else None

    def latest_good(self) -> BackupInfo | None:
        """The newest backup not found corrupt, or None when there is none."""
        return next((info for info in self.list() if info.status != "corrupt"), None)

    # -- verify --------------------------------------------------------------------------------
    def check_scan(self, backup_id: str, result: ScanResult) -> Manifest:
        """Compare what a pass over the archive found against its manifest (see ``verify.check_scan``)."""
        return verify_steps.check_scan(self, backup_id, result)

    def scan(
        self,
        backup_id: str,
        progress: Progress | None = None,
        *,
        extract_to: Path | None = None,
        stage: str = "verifying",
        trust_unsigned: bool = False,
    ) -> Manifest:
        """Check a backup's signature and every checksum, optionally extracting it; see
        ``jamey_engine.vault.verify.scan`` for the passes and the errors."""
        return verify_steps.scan(
            self, backup_id, progress, extract_to=extract_to, stage=stage, trust_unsigned=trust_unsigned
        )

    def verify(
        self,
        backup_id: str,
        progress: Progress | None = None,
        *,
        trust_unsigned: bool = False,
        actor: str | None = None,
    ) -> BackupInfo:
        """Check the manifest's signature and recompute every member's SHA-256 against it;
        return the (now "ok") BackupInfo.

        Raises NotFound for an unknown backup, BackupUnsigned for an unsigned one (unless
        ``trust_unsigned``, which is recorded in the operation log with ``actor``), and
        BackupCorrupt(file=<damaged member>) when the signature is wrong, the archive does not
        decompress, its tar structure is broken, or a checksum differs.
        """
        started = time.monotonic()
        self.scan(backup_id, progress, trust_unsigned=trust_unsigned)
        info = self.get(backup_id)
        if trust_unsigned and not info.signed:
            self.record("verify", "success", started, detail=f"{backup_id}: trusted unsigned", actor=actor)
        return info

    # -- rekey (rekey.py) ----------------------------------------------------------------------
    def rekey(
        self, backup_id: str, progress: Progress | None = None, *, actor: str | None = None
    ) -> BackupInfo:
        """Re-encrypt ``backup_id`` to the current JAMEY_BACKUP_RECIPIENTS (or passphrase);
        see ``jamey_engine.vault.rekey.rekey`` for the guarantees and errors."""
        return rekey_steps.rekey(self, backup_id, progress, actor=actor)

    # -- delete and retention ------------------------------------------------------------------
    def delete(self, backup_id: str, *, actor: str | None = None) -> None:
        """Remove a backup's archives (plain and encrypted) and catalog entry, recorded in the
        operation log (kind ``delete``, by ``actor``); raises NotFound if it does not exist and
        Busy while a rekey of it runs."""
        started = time.monotonic()
        info = self.get(backup_id)
        if self.catalog._running(backup_id):
            raise Busy(
                f"backup {backup_id} is being written or re-encrypted; delete it when that has finished"
            )
        # Every form: a rekey that died between its rename and its unlink leaves two.
        for path in self.catalog.archive_forms(backup_id):
            path.unlink(missing_ok=True)
        self.catalog.sidecar_path(backup_id).unlink(missing_ok=True)
        fsync_path(self.settings.backup_dir)
        log.info("backup %s deleted", backup_id)
        self.record("delete", "success", started, size_bytes=info.size_bytes, detail=backup_id, actor=actor)

    def retain(
        self, keep_last: int | None = None, keep_days: int | None = None, *, actor: str | None = None
    ) -> builtins.list[str]:
        """Delete backups outside the retention rules; return the deleted local ids (oldest first).

        Kept: always the newest backup, the newest ``keep_last``, those younger than
        ``keep_days`` days. With neither rule given, the settings' policy applies (see
        ``tiers``: JAMEY_BACKUP_KEEP, 0 keeping all unless a tier is set, _KEEP_DAYS, _KEEP_DAILY,
        _KEEP_WEEKLY, _KEEP_MONTHLY), and with JAMEY_BACKUP_REMOTE the remote's own policy
        (JAMEY_BACKUP_REMOTE_KEEP_*) to the copies there. Raises InvalidInput naming the value
        when ``keep_last`` < 1 or ``keep_days`` < 0.
        """
        if keep_last is None and keep_days is None:
            plans = self.retention_plan()
        else:
            if keep_last is not None and (isinstance(keep_last, bool) or keep_last < 1):
                raise InvalidInput(f"keep_last {keep_last!r} must be 1 or more")
            if keep_days is not None and (isinstance(keep_days, bool) or keep_days < 0):
                raise InvalidInput(f"keep_days {keep_days!r} must be 0 or more")
            policy = Policy(last=keep_last or 0, days=keep_days or 0)
            backups = [(info.id, info.created_at) for info in self.list()]
            plans = {
                "local": tiers.plan(
                    backups, policy if not policy.keeps_everything else Policy(last=1), utcnow()
                )
            }
        deleted = []
        for decision in reversed(plans["local"]):
            if not decision.keep:
                self.delete(decision.id, actor=actor)
                deleted.append(decision.id)
        if "remote" in plans:
            offsite.prune_remote(self, [d.id for d in plans["remote"] if not d.keep], actor=actor)
        return deleted

    def retention_plan(self) -> dict[str, builtins.list[Decision]]:
        """The settings' retention plan: ``{"local": [...], "remote": [...]}`` (remote only with
        JAMEY_BACKUP_REMOTE), every backup newest first with why it is kept, or no reason when
        it would go. Changes nothing; raises Unavailable when the remote cannot be listed."""
        settings = self.settings
        policy = Policy.from_settings(settings)
        if settings.backup_keep == 0 and not (policy.daily or policy.weekly or policy.monthly):
            policy = Policy()  # JAMEY_BACKUP_KEEP=0 keeps everything, as it always has
        now = utcnow()
        local = [(info.id, info.created_at) for info in self.list()]
        plans = {"local": tiers.plan(local, policy, now)}
        if settings.backup_remote:
            remote = [(backup_id, id_time(backup_id)) for backup_id in offsite.remote_ids(self)]
            plans["remote"] = tiers.plan(remote, Policy.from_settings(settings, remote=True), now)
        return plans

    # -- restore (restore.py) ------------------------------------------------------------------
    def plan_restore(self, backup_id: str) -> RestorePlan:
        """What restoring ``backup_id`` would change, now against the backup; changes nothing.

        Raises InvalidInput for a malformed id and NotFound for an unknown backup.
        """
        return restore_steps.plan_restore(self, backup_id)

    # -- off-site copies (offsite.py) ----------------------------------------------------------
    def push(self, *, actor: str | None = None, force: bool = False) -> dict[str, dict[str, Any]]:
        """Copy local backups whose off-site copy is due (every one not on the remote with
        ``force``) to JAMEY_BACKUP_REMOTE; return their new remote states by id."""
        return offsite.sync(self, actor=actor, force=force)

    def pull(self, backup_id: str, *, trust_unsigned: bool = False, actor: str | None = None) -> BackupInfo:
        """Fetch a remote-only backup and verify it; see ``jamey_engine.vault.offsite.pull``."""
        return offsite.pull(self, backup_id, trust_unsigned=trust_unsigned, actor=actor)

    def ensure_local(self, backup_id: str, *, trust_unsigned: bool = False, actor: str | None = None) -> None:
        """Pull ``backup_id`` from the remote when it is not in the backup directory."""
        if self.catalog.info(check_backup_id(backup_id)) is None:
            self.pull(backup_id, trust_unsigned=trust_unsigned, actor=actor)

    def restore(
        self,
        backup_id: str,
        progress: Progress | None = None,
        safety_backup: bool = True,
        *,
        actor: str | None = None,
        reenable_keys: bool = False,
        trust_unsigned: bool = False,
    ) -> RestorePlan:
        """Replace the live memory layers and database rows with a verified backup's; keys revoked
        or rotated since the backup stay so unless ``reenable_keys``.

        A backup only on the remote is pulled (and verified) first. See
        ``jamey_engine.vault.restore.restore`` for the steps and guarantees.
        """
        self.ensure_local(backup_id, trust_unsigned=trust_unsigned, actor=actor)
        return restore_steps.restore(
            self,
            backup_id,
            progress=progress,
            safety_backup=safety_backup,
            actor=actor,
            reenable_keys=reenable_keys,
            trust_unsigned=trust_unsigned,
        )
