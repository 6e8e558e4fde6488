"""The backup catalog: where archives and their sidecars live, listing, and stale-file cleanup.

Next to every archive ``<id>.tar.zst`` (``<id>.tar.zst.age`` when encrypted) sits a sidecar ``<id>.json`` holding a copy of the
manifest, the archive's size and the last verification result, so listing is one small
read per backup and never decompresses an archive.

A backup in progress writes ``.tmp-<id>.tar.zst.partial`` and holds an flock on it. Only the
final rename makes a backup visible, so a backup killed at any point leaves nothing listed,
and the leftovers (unlocked temporaries, orphan sidecars, snapshot staging) are removed by
the next listing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jamey_engine.fsutil import fsync_path, is_held, remove_tree, write_durably
from jamey_engine.vault.manifest import ARCHIVE_SUFFIX, ENCRYPTED_SUFFIX, Manifest, is_backup_id

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"
TEMP_PREFIX = ".tmp-"
PARTIAL_SUFFIX = ".partial"
BACKUP_STAGING_PREFIX = ".backup-staging-"
RESTORE_STAGING_PREFIX = ".restore-staging-"
RESTORE_PREVIOUS_PREFIX = ".restore-previous-"
# A verification result being written is a short-lived temporary; older than this it is stale.
STALE_TEMP_SECONDS = 60.0


KEYS_TABLE = "api_keys"


def no_space_message(where: Path, snapshot: bool) -> str:
    """The one-line error for a full disk while snapshotting into, or writing to, ``where``."""
    doing = "taking the memory snapshot in" if snapshot else "writing backup to"
    return f"no space left on device while {doing} {where}; free some space and try again"


@dataclass(frozen=True)
class RestorePlan:
    """What a restore changes: documents per layer and key count, ``(now, in the backup)``."""

    backup_id: str
    layers: dict[str, tuple[int, int]]
    keys: tuple[int, int]
    tables: dict[str, tuple[int, int]] | None = None
    safety_backup_id: str | None = None
    dry_run: bool = True
    switched_at: float | None = None  # epoch seconds when the new layers were installed
    signed: bool = True  # False: the backup is unsigned and restores only with --trust-unsigned


@dataclass(frozen=True)
class BackupInfo:
    """One backup as listed: identity, size, status ("ok", "corrupt" or "unverified") and contents."""

    id: str
    created_at: datetime
    size_bytes: int
    status: str
    documents: dict[str, int]
    keys: int
    path: Path
    label: str = ""
    engine_version: str = ""
    total_bytes: int = 0
    files: int = 0
    verified_at: datetime | None = None
    problem: str | None = None
    tables: dict[str, int] = field(default_factory=dict)
    encrypted: bool = False
    signed: bool = False  # the catalog holds a manifest signature (checked on verify and restore)
    location: str = "local"  # "local", "remote" (JAMEY_BACKUP_REMOTE only) or "both"
    remote_checked_at: datetime | None = None  # when the remote copy was last checked sound


def id_time(backup_id: str) -> datetime:
    """The UTC time written in a backup id."""
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


class Catalog:
    """Paths and sidecars of the backups in one backup directory."""

    def __init__(self, backup_dir: Path, data_dir: Path) -> None:
        self.backup_dir = backup_dir
        self.data_dir = data_dir

    # -- paths -------------------------------------------------------------------------------
    def archive_path(self, backup_id: str, encrypted: bool | None = None) -> Path:
        """Where the finished archive of ``backup_id`` lives: the ``.tar.zst.age`` one when
        ``encrypted`` (or, with None, when that file exists), else the plain ``.tar.zst``."""
        age = self.backup_dir / f"{backup_id}{ENCRYPTED_SUFFIX}"
        if encrypted or (encrypted is None and age.exists()):
            return age
        return self.backup_dir / f"{backup_id}{ARCHIVE_SUFFIX}"

    def sidecar_path(self, backup_id: str) -> Path:
        """Where the catalog entry (manifest copy, size, verify result) of ``backup_id`` lives."""
        return self.backup_dir / f"{backup_id}{SIDECAR_SUFFIX}"

    def partial_path(self, backup_id: str) -> Path:
        """The temporary archive a running backup writes (and holds locked)."""
        return self.backup_dir / f"{TEMP_PREFIX}{backup_id}{ARCHIVE_SUFFIX}{PARTIAL_SUFFIX}"

    def sidecar_temp_path(self, backup_id: str, purpose: str = "create") -> Path:
        """A temporary for writing the sidecar durably."""
        tag = "" if purpose == "create" else f".{purpose}-{os.getpid()}-{secrets.token_hex(4)}"
        return self.backup_dir / f"{TEMP_PREFIX}{backup_id}{SIDECAR_SUFFIX}{tag}{PARTIAL_SUFFIX}"

    def staging_path(self, backup_id: str) -> Path:
        """The snapshot staging directory of a running backup (same filesystem as the data)."""
        return self.data_dir / f"{BACKUP_STAGING_PREFIX}{backup_id}"

    def staging_owner_path(self, backup_id: str) -> Path:
        """A file in the staging directory that the running backup holds locked."""
        return self.staging_path(backup_id) / ".owner"

    def _staging_is_stale(self, path: Path, now: float) -> bool:
        owner = path / ".owner"
        # Existence first, then the lock: the owner file appears already locked
        # (fsutil.lock_new_file), so "exists and unlocked" can only mean its backup died (the
        # lock dies with the process). Asked the other way round, an owner made between the
        # two questions would look stale.
        if owner.exists():
            return not is_held(owner)
        try:  # just created, owner not yet made: give it a moment
            return now - path.stat().st_mtime > STALE_TEMP_SECONDS
        except FileNotFoundError:
            return False

    # -- sidecars ----------------------------------------------------------------------------
    def write_sidecar(
        self,
        manifest: Manifest,
        archive_size: int,
        verify: dict[str, Any] | None,
        purpose: str,
        **fields: Any,
    ) -> None:
        """Write the catalog entry of a backup durably (temporary, fsync, rename).

        Other fields of the existing entry (the signature, say) are kept unless ``purpose`` is
        "create"; ``fields`` (JSON-ready) set or replace some, and a field given as None is
        removed.
        """
        kept = {} if purpose == "create" else (self.read_sidecar(manifest.id) or {})
        data = {
            **kept,
            "manifest": manifest.to_dict(),
            "archive_size": archive_size,
            "verify": verify,
            **fields,
        }
        data = {name: value for name, value in data.items() if name not in fields or value is not None}
        raw = json.dumps(data, indent=1, sort_keys=True).encode()
        write_durably(self.sidecar_path(manifest.id), raw, self.sidecar_temp_path(manifest.id, purpose))

    def read_sidecar(self, backup_id: str) -> dict[str, Any] | None:
        """The catalog entry of ``backup_id``, or None when it is missing or unreadable."""
        try:
            data = json.loads(self.sidecar_path(backup_id).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def sidecar_manifest(self, backup_id: str) -> Manifest | None:
        """The manifest copy in the catalog entry, or None when there is no usable entry."""
        data = self.read_sidecar(backup_id)
        if data is None:
            return None
        try:
            return Manifest.from_dict(data.get("manifest"), source=self.sidecar_path(backup_id).name)
        except Exception:
            return None

    # -- listing -----------------------------------------------------------------------------
    def ids(self) -> list[str]:
        """Ids of every finished backup (an archive with the final name), oldest first."""
        if not self.backup_dir.is_dir():
            return []
        found = []
        for path in self.backup_dir.iterdir():
            name = path.name
            if name.startswith("."):
                continue
            for suffix in (ARCHIVE_SUFFIX, ENCRYPTED_SUFFIX):
                backup_id = name[: -len(suffix)]
                # Anything else is not ours; leave it alone. (A rekey that encrypted a plain
                # backup leaves both names for a moment: one backup.)
                if name.endswith(suffix) and is_backup_id(backup_id) and backup_id not in found:
                    found.append(backup_id)
        return sorted(found)

    def info(self, backup_id: str) -> BackupInfo | None:
        """BackupInfo from the archive's size and its sidecar, or None if the archive is gone."""
        archive = self.archive_path(backup_id)
        try:
            size = archive.stat().st_size
        except FileNotFoundError:
            return None
        return info_from_sidecar(backup_id, archive, size, self.read_sidecar(backup_id))

    # -- cleanup -----------------------------------------------------------------------------
    def _running(self, backup_id: str) -> bool:
        return is_held(self.partial_path(backup_id))

    def archive_forms(self, backup_id: str) -> list[Path]:
        """Every archive file of ``backup_id`` that exists (the plain and the encrypted name)."""
        forms = (self.archive_path(backup_id, encrypted=False), self.archive_path(backup_id, encrypted=True))
        return [path for path in forms if path.exists()]

    def settle(self, backup_id: str) -> list[Path]:
        """Finish what a rekey of ``backup_id`` that died left half done; return removed paths.

        A rekey renames its complete, fsynced encrypted archive into place before it removes
        the plain one, so when both exist (and no rekey holds the partial) the plain one is
        the leftover. The catalog's size is then set to the archive that stays.
        """
        if self._running(backup_id):
            return []
        removed = []
        plain = self.archive_path(backup_id, encrypted=False)
        if plain.exists() and self.archive_path(backup_id, encrypted=True).exists():
            plain.unlink(missing_ok=True)
            fsync_path(self.backup_dir)
            removed.append(plain)
        data = self.read_sidecar(backup_id)
        manifest = self.sidecar_manifest(backup_id)
        if data is not None and manifest is not None and "rekey_from_size" in data:
            try:
                size = self.archive_path(backup_id).stat().st_size
            except FileNotFoundError:
                return removed
            accepted = size in (data.get("archive_size"), data.get("rekey_from_size"))
            verify = data.get("verify") if isinstance(data.get("verify"), dict) else None
            self.write_sidecar(
                manifest,
                size if accepted else data.get("archive_size", size),
                verify,
                "settle",
                rekey_from_size=None,
            )
        return removed

    def clean_stale(self) -> list[Path]:
        """Remove what killed backups left behind; return the removed paths.

        Removes unlocked partial archives, their sidecar temporaries, sidecars without an
        archive, and snapshot staging directories, but never anything of a running backup.
        """
        removed: list[Path] = []
        if self.backup_dir.is_dir():
            for listed in self.ids():
                removed.extend(self.settle(listed))
            now = time.time()
            for path in self.backup_dir.iterdir():
                name = path.name
                backup_id = None
                if name.startswith(TEMP_PREFIX) and name.endswith(PARTIAL_SUFFIX):
                    backup_id = name[len(TEMP_PREFIX) :].split(".", 1)[0]
                    if self._running(backup_id):
                        continue
                    short_lived = any(
                        f".{purpose}-" in name for purpose in ("verify", "restore", "settle", "rekey")
                    )
                    try:
                        if short_lived and now - path.stat().st_mtime < STALE_TEMP_SECONDS:
                            continue
                    except FileNotFoundError:
                        continue
                elif name.endswith(SIDECAR_SUFFIX) and not name.startswith("."):
                    backup_id = name[: -len(SIDECAR_SUFFIX)]
                    if not is_backup_id(backup_id):
                        continue
                    # Running first: a backup renames its partial to the archive after
                    # writing the sidecar, so one of the two exists throughout; asked the
                    # other way round, a rename between the questions loses the sidecar.
                    if self._running(backup_id) or self.archive_path(backup_id).exists():
                        continue
                else:
                    continue
                remove_tree(path)
                removed.append(path)
        if self.data_dir.is_dir():
            now = time.time()
            for path in self.data_dir.iterdir():
                # Judged by the lock inside it: a backup into another backup dir may own it.
                if path.name.startswith(BACKUP_STAGING_PREFIX) and self._staging_is_stale(path, now):
                    remove_tree(path)
                    removed.append(path)
        for path in removed:
            log.info("removed stale backup leftover %s", path)
        return removed


def info_from_sidecar(backup_id: str, archive: Path | str, size: int, data: Any) -> BackupInfo:
    """The BackupInfo of an archive of ``size`` bytes described by sidecar ``data`` (None when
    missing). A ``str`` archive names a file on the remote only: its location is "remote"."""
    remote_only = isinstance(archive, str)
    path = Path(archive)
    remote: dict[str, Any] = {}
    if isinstance(data, dict) and isinstance(data.get("remote"), dict):
        remote = data["remote"]
    location = "remote" if remote_only else ("both" if remote.get("status") == "ok" else "local")
    checked_at = _when(remote.get("checked_at"))
    try:
        manifest = Manifest.from_dict(data.get("manifest"), source=f"{backup_id}{SIDECAR_SUFFIX}")
    except Exception:
        manifest = None
    if not isinstance(data, dict) or manifest is None:
        return BackupInfo(
            id=backup_id,
            created_at=id_time(backup_id),
            size_bytes=size,
            status="unverified",
            documents={},
            keys=0,
            path=path,
            encrypted=path.name.endswith(ENCRYPTED_SUFFIX),
            problem="catalog entry missing or unreadable; `jamey backup verify` rebuilds it",
            location=location,
            remote_checked_at=checked_at,
        )
    verify = data.get("verify") if isinstance(data.get("verify"), dict) else None
    status = "unverified"
    verified_at = None
    problem = None
    if verify is not None:
        status = "ok" if verify.get("status") == "ok" else "corrupt"
        verified_at = _when(verify.get("at"))
        problem = verify.get("message") if status == "corrupt" else None
    expected_size = data.get("archive_size")
    # While a rekey runs (or after one died mid-way) either archive is a sound backup.
    accepted = {expected_size, data.get("rekey_from_size")}
    if isinstance(expected_size, int) and size not in accepted:
        status = "corrupt"
        problem = f"archive is {size} bytes but {expected_size} bytes were written"
    if remote.get("status") == "failed" and problem is None:
        problem = f"off-site copy failed: {remote.get('error')}"
    return BackupInfo(
        id=backup_id,
        created_at=manifest.created_at,
        size_bytes=size,
        status=status,
        documents=dict(manifest.documents),
        keys=manifest.keys,
        path=path,
        label=manifest.label,
        engine_version=manifest.engine_version,
        total_bytes=manifest.total_bytes,
        files=len(manifest.files),
        verified_at=verified_at,
        problem=problem,
        tables=dict(manifest.tables),
        encrypted=path.name.endswith(ENCRYPTED_SUFFIX),
        signed=isinstance(data.get("signature"), dict),
        location=location,
        remote_checked_at=checked_at,
    )


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None
