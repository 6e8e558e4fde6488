"""Creating a backup: a consistent snapshot of the memory layers and the database, one archive.

A backup is one ``<id>.tar.zst`` in ``settings.backup_dir``: the database rows (a portable
JSON dump), every memory layer's index files (hard-linked snapshot), and ``manifest.json``
with the SHA-256 and size of every file, signed. With JAMEY_BACKUP_RECIPIENTS (or a passphrase)
set, it is ``<id>.tar.zst.age`` instead: that same stream, age-encrypted and so authenticated
(``crypto.py``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from jamey_engine import __version__
from jamey_engine.durations import utcnow
from jamey_engine.errors import JameyError, Unavailable
from jamey_engine.fsutil import fsync_path, is_no_space, lock_new_file, remove_tree
from jamey_engine.progress import Progress, no_progress
from jamey_engine.vault import offsite
from jamey_engine.vault.archive import ArchiveWriter
from jamey_engine.vault.catalog import KEYS_TABLE, BackupInfo, no_space_message
from jamey_engine.vault.crypto import BackupKeys, encrypting
from jamey_engine.vault.manifest import (
    DATABASE_NAME,
    MANIFEST_NAME,
    MEMORY_PREFIX,
    SIGNATURE_NAME,
    Manifest,
    new_backup_id,
)
from jamey_engine.vault.signing import load_signing_key

if TYPE_CHECKING:
    from jamey_engine.vault.core import Vault

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


def create(
    vault: Vault, progress: Progress | None = None, *, label: str = "", actor: str | None = None
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
        info = write_backup(vault, progress or no_progress, label)
    except BaseException as err:
        detail = err.message if isinstance(err, JameyError) else f"{type(err).__name__}: {err}"
        vault.record("backup", "failure", started, detail=detail, actor=actor)
        raise
    vault.record("backup", "success", started, size_bytes=info.size_bytes, detail=info.id, actor=actor)
    # Off-site copies (this one, and earlier ones whose retry is due); a remote failure is
    # recorded and retried later, never a failed backup.
    try:
        offsite.sync(vault, actor=actor)
    except Exception:
        log.warning("off-site copy after backup %s failed", info.id, exc_info=True)
    return vault.catalog.info(info.id) or info


def write_backup(vault: Vault, progress: Progress, label: str) -> BackupInfo:
    """Write one backup archive and its catalog sidecar (see :func:`create`); record nothing."""
    backup_dir = vault.settings.backup_dir
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise Unavailable(f"cannot create the backup directory {backup_dir}: {err.strerror}") from None
    keys = vault.backup_keys()
    signer = load_signing_key(vault.settings)
    vault.catalog.clean_stale()
    now = utcnow()
    backup_id = new_backup_id(now)
    partial = vault.catalog.partial_path(backup_id)
    staging = vault.catalog.staging_path(backup_id)
    archive = vault.catalog.archive_path(backup_id, encrypted=keys.encrypts)
    where = backup_dir
    committed = False
    fd: int | None = None
    owner: int | None = None
    try:
        fd = lock_new_file(partial)
        progress(0, 0, "snapshotting memory")
        where = vault.settings.data_dir
        staging.mkdir(parents=True)
        owner = lock_new_file(vault.catalog.staging_owner_path(backup_id))
        documents = dict(vault.memory.snapshot(staging / "memory"))
        progress(0, 0, "exporting database")
        rows = vault.db.dump()
        database = json.dumps({"dialect": vault.db.dialect, "tables": rows}, separators=(",", ":"))
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
                dialect=vault.db.dialect,
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
        vault.catalog.write_sidecar(manifest, archive_size, None, "create", signature=signer.sign(manifest))
        os.replace(partial, archive)
        committed = True
        fsync_path(backup_dir)
    except BaseException as err:
        if not committed:
            remove_tree(partial)
            remove_tree(vault.catalog.sidecar_temp_path(backup_id))
            remove_tree(vault.catalog.sidecar_path(backup_id))
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
    info = vault.catalog.info(backup_id)
    assert info is not None, "the archive was just renamed into place"
    log.info("backup %s written: %d bytes", backup_id, info.size_bytes)
    return info
