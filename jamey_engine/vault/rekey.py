"""Re-encrypting a backup to the current recipients (or passphrase), atomically."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from jamey_engine.errors import InvalidInput, JameyError, Unavailable
from jamey_engine.fsutil import fsync_path, is_no_space, lock_new_file, remove_tree
from jamey_engine.progress import Progress, no_progress
from jamey_engine.vault.catalog import BackupInfo, no_space_message
from jamey_engine.vault.crypto import copy_stream, decrypting, encrypting, is_encrypted
from jamey_engine.vault.manifest import check_backup_id

if TYPE_CHECKING:
    from jamey_engine.vault.core import Vault

log = logging.getLogger(__name__)


def rekey(
    vault: Vault, backup_id: str, progress: Progress | None = None, *, actor: str | None = None
) -> BackupInfo:
    """Re-encrypt ``backup_id`` to the current JAMEY_BACKUP_RECIPIENTS (or passphrase);
    a plain backup gets encrypted. Returns the new BackupInfo.

    Atomic: the new archive is written beside the old one, fsynced and renamed over it,
    so at every moment one complete backup is listed. The old archive is decrypted with
    the current identity and authenticated as it streams; any failure leaves it as it was.
    Raises InvalidInput when no recipient or passphrase is set, BackupLocked without a
    usable identity, BackupCorrupt when the old archive fails authentication, NotFound,
    and Unavailable when the disk fills.
    """
    started = time.monotonic()
    try:
        info = _rekey(vault, check_backup_id(backup_id), progress or no_progress)
    except BaseException as err:
        detail = err.message if isinstance(err, JameyError) else f"{type(err).__name__}: {err}"
        vault.record("rekey", "failure", started, detail=f"{backup_id}: {detail}", actor=actor)
        raise
    vault.record("rekey", "success", started, size_bytes=info.size_bytes, detail=backup_id, actor=actor)
    return info


def _rekey(vault: Vault, backup_id: str, progress: Progress) -> BackupInfo:
    keys = vault.backup_keys()
    if not keys.encrypts:
        raise InvalidInput(
            "set JAMEY_BACKUP_RECIPIENTS (or JAMEY_BACKUP_PASSPHRASE_FILE) to the keys to "
            f"re-encrypt backup {backup_id} to"
        )
    info = vault.get(backup_id)
    source = info.path
    target = vault.catalog.archive_path(backup_id, encrypted=True)
    partial = vault.catalog.partial_path(backup_id)
    label = f"backup {backup_id}"
    data = vault.catalog.read_sidecar(backup_id) or {}
    manifest = vault.catalog.sidecar_manifest(backup_id)
    verify = data.get("verify") if isinstance(data.get("verify"), dict) else None
    fd: int | None = None
    try:
        fd = lock_new_file(partial)
        progress(0, info.size_bytes, "re-encrypting")
        with open(fd, "wb", closefd=False) as handle, encrypting(handle, keys) as sink:
            if is_encrypted(source):
                with decrypting(source, keys, label) as (plain, _):
                    copy_stream(plain, sink)
            else:
                with open(source, "rb") as plain_file:
                    copy_stream(plain_file, sink)
        os.fsync(fd)
        size = os.fstat(fd).st_size
        # The catalog accepts either archive from here on, so a crash before, between or
        # after the rename and the unlink below leaves one listed, sound backup (the next
        # listing settles the rest: Catalog.settle).
        if manifest is not None:
            vault.catalog.write_sidecar(manifest, size, verify, "rekey", rekey_from_size=info.size_bytes)
        os.replace(partial, target)
        fsync_path(vault.settings.backup_dir)
    except BaseException as err:
        remove_tree(partial)
        if isinstance(err, OSError):
            if is_no_space(err):
                raise Unavailable(no_space_message(vault.settings.backup_dir, False)) from None
            raise Unavailable(f"could not re-encrypt {label}: {err.strerror or err}") from None
        raise
    finally:
        if fd is not None:
            os.close(fd)
    if source != target:
        source.unlink(missing_ok=True)
        fsync_path(vault.settings.backup_dir)
    if manifest is not None:
        vault.catalog.write_sidecar(manifest, size, verify, "rekey", rekey_from_size=None)
    progress(size, size, "re-encrypted")
    log.info("backup %s re-encrypted to %d recipient(s)", backup_id, len(keys.recipients))
    return vault.get(backup_id)
