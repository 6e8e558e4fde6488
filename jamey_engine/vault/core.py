"""PhoenixVault: the one object every front door holds for backups, and where each step lives.

:class:`Vault` lists backups and records each operation; the steps are modules of their own,
each taking the vault: ``create.py`` (a consistent backup while the service runs),
``verify.py`` (checksums and signature), ``rekey.py`` (re-encrypting), ``retain.py`` (deleting,
and the retention rules applied), ``restore.py`` (plan and restore) and ``offsite.py`` (copies
on a remote).
"""

from __future__ import annotations

import builtins
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jamey_engine import oplog
from jamey_engine.config import Settings
from jamey_engine.errors import NotFound
from jamey_engine.oplog import OperationStatus
from jamey_engine.progress import Progress
from jamey_engine.vault import create as create_steps
from jamey_engine.vault import offsite
from jamey_engine.vault import rekey as rekey_steps
from jamey_engine.vault import restore as restore_steps
from jamey_engine.vault import retain as retain_steps
from jamey_engine.vault import verify as verify_steps
from jamey_engine.vault.archive import ScanResult
from jamey_engine.vault.catalog import BackupInfo, Catalog, RestorePlan
from jamey_engine.vault.crypto import BackupKeys
from jamey_engine.vault.manifest import Manifest, check_backup_id
from jamey_engine.vault.tiers import Decision

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.events import EventPublisher
    from jamey_engine.memory import MemoryStore


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
    def record(self, kind: str, status: OperationStatus, started: float, **fields: Any) -> None:
        """Record one vault operation (backup, restore, delete) that began at ``started``
        (monotonic seconds) in the operation log, and publish its event; best effort."""
        oplog.record(self.db, self.events, kind, status, time.monotonic() - started, **fields)

    def backup_keys(self) -> BackupKeys:
        """The encryption settings, read now (key files may change while a service runs).

        Raises ConfigError naming the variable when a key file is unreadable or malformed.
        """
        return BackupKeys.from_settings(self.settings)

    # -- create (create.py) ---------------------------------------------------------------------
    def create(
        self, progress: Progress | None = None, *, label: str = "", actor: str | None = None
    ) -> BackupInfo:
        """Take a consistent backup of the memory layers and the database; return its BackupInfo.
        See ``jamey_engine.vault.create.create`` for the guarantees and errors."""
        return create_steps.create(self, progress, label=label, actor=actor)

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

    # -- delete and retention (retain.py) -------------------------------------------------------
    def delete(self, backup_id: str, *, actor: str | None = None) -> None:
        """Remove a backup (archives and catalog entry), recorded in the operation log; see
        ``jamey_engine.vault.retain.delete`` for the errors."""
        retain_steps.delete(self, backup_id, actor=actor)

    def retain(
        self, keep_last: int | None = None, keep_days: int | None = None, *, actor: str | None = None
    ) -> builtins.list[str]:
        """Delete backups outside the retention rules; return the deleted local ids (oldest first).
        See ``jamey_engine.vault.retain.retain`` for the rules and errors."""
        return retain_steps.retain(self, keep_last, keep_days, actor=actor)

    def retention_plan(self) -> dict[str, builtins.list[Decision]]:
        """The settings' retention plan, changing nothing; see ``jamey_engine.vault.retain.retention_plan``."""
        return retain_steps.retention_plan(self)

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
