"""Off-site copies: after every backup its archive and sidecar go to JAMEY_BACKUP_REMOTE (rclone)
and are checked there (size and SHA-256); remote-only backups are listed, pulled and restored.

The copy's state lives in the backup's sidecar (``remote``: status, attempts, check time, the
next attempt and the last error), so every process and the service's /metrics read the same
thing. A failed copy is retried with exponential backoff (1 minute doubling to 6 hours) at
the next backup or ``jamey backup push``; it never fails or blocks a backup. Each attempt is an
``offsite`` operation in the operation log (``backup_remote_copies_total{status}``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from jamey_engine.durations import utcnow
from jamey_engine.errors import JameyError, NotFound, Unavailable
from jamey_engine.fsutil import fsync_path, lock_new_file, remove_tree, write_durably
from jamey_engine.vault.catalog import SIDECAR_SUFFIX, BackupInfo, info_from_sidecar
from jamey_engine.vault.manifest import ARCHIVE_SUFFIX, ENCRYPTED_SUFFIX, check_backup_id, is_backup_id
from jamey_engine.vault.rclone import Rclone

if TYPE_CHECKING:
    from jamey_engine.vault.core import Vault

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(minutes=1)
LAST_RETRY = timedelta(hours=6)


def _backoff(attempts: int) -> timedelta:
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LAST_RETRY)


def _remote_state(data: dict[str, Any] | None) -> dict[str, Any]:
    state = (data or {}).get("remote")
    return state if isinstance(state, dict) else {}


def push(vault: Vault, backup_id: str, *, actor: str | None = None) -> dict[str, Any]:
    """Copy one backup's archive and sidecar to the remote and check them there; return the
    ``remote`` state recorded in its sidecar ({"status": "ok", "checked_at": ...} or
    {"status": "failed", "error": ..., "next_attempt_at": ...}). Never raises for a remote
    failure (it is recorded); raises NotFound for an unknown backup."""
    started = time.monotonic()
    info = vault.get(backup_id)
    rclone = Rclone(vault.settings)
    data = vault.catalog.read_sidecar(backup_id) or {}
    previous = _remote_state(data)
    attempts = int(previous.get("attempts", 0)) + 1
    try:
        rclone.put(info.path, info.path.name)
        size, remote_hash = rclone.stat(info.path.name)
        if size != info.size_bytes:
            raise Unavailable(f"the remote copy of {info.path.name} is {size} bytes, not {info.size_bytes}")
        local = _sha256(info.path)
        remote = remote_hash or rclone.sha256(info.path.name)
        if remote != local:
            raise Unavailable(
                f"the remote copy of {info.path.name} differs from the local archive (SHA-256 {remote[:16]}…, "
                f"expected {local[:16]}…)"
            )
        state: dict[str, Any] = {
            "status": "ok",
            "checked_at": utcnow().isoformat(),
            "size": size,
            "sha256": local,
            "attempts": attempts,
        }
        _record(vault, backup_id, state)
        rclone.put(vault.catalog.sidecar_path(backup_id), f"{backup_id}{SIDECAR_SUFFIX}")
    except JameyError as err:
        state = {
            "status": "failed",
            "error": err.message,
            "attempts": attempts,
            "failed_at": utcnow().isoformat(),
            "next_attempt_at": (utcnow() + _backoff(attempts)).isoformat(),
        }
        _record(vault, backup_id, state)
        log.warning("off-site copy of backup %s failed (attempt %d): %s", backup_id, attempts, err.message)
        vault.record("offsite", "failure", started, detail=f"{backup_id}: {err.message}", actor=actor)
        return state
    vault.record("offsite", "success", started, size_bytes=info.size_bytes, detail=backup_id, actor=actor)
    return state


def _sha256(path: os.PathLike[str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _record(vault: Vault, backup_id: str, state: dict[str, Any]) -> None:
    manifest = vault.catalog.sidecar_manifest(backup_id)
    data = vault.catalog.read_sidecar(backup_id) or {}
    if manifest is None:
        return
    verify = data.get("verify") if isinstance(data.get("verify"), dict) else None
    size = vault.catalog.archive_path(backup_id).stat().st_size
    vault.catalog.write_sidecar(manifest, size, verify, "remote", remote=state)


def due(vault: Vault, now: datetime | None = None) -> list[str]:
    """Ids of local backups not yet safely on the remote whose next attempt is due, oldest first."""
    now = now or utcnow()
    ids = []
    for info in reversed(vault.list()):
        state = _remote_state(vault.catalog.read_sidecar(info.id))
        if state.get("status") in ("ok", "pruned"):  # pruned: the remote's retention let it go
            continue
        next_at = state.get("next_attempt_at")
        if next_at is None or datetime.fromisoformat(str(next_at)) <= now:
            ids.append(info.id)
    return ids


def sync(vault: Vault, *, actor: str | None = None, force: bool = False) -> dict[str, dict[str, Any]]:
    """Copy every local backup that is due (all that are not on the remote with ``force``);
    return their new remote states by id. Nothing when no remote is configured; never raises
    for a remote failure."""
    if not Rclone(vault.settings).configured:
        return {}
    ids = [info.id for info in reversed(vault.list()) if info.location == "local"] if force else due(vault)
    return {backup_id: push(vault, backup_id, actor=actor) for backup_id in ids}


def remote_ids(vault: Vault) -> list[str]:
    """Ids of every backup whose archive is on the remote (Unavailable when it cannot be listed)."""
    found = set()
    for remote_file in Rclone(vault.settings).list():
        for suffix in (ENCRYPTED_SUFFIX, ARCHIVE_SUFFIX):
            backup_id = remote_file.name[: -len(suffix)]
            if remote_file.name.endswith(suffix) and is_backup_id(backup_id):
                found.add(backup_id)
    return sorted(found)


def prune_remote(vault: Vault, backup_ids: list[str], *, actor: str | None = None) -> None:
    """Delete these backups' copies (archive and sidecar) from the remote; a local backup's
    sidecar then says ``pruned`` so it is not copied again. Failures are logged, not raised."""
    rclone = Rclone(vault.settings)
    if not backup_ids:
        return
    try:
        names = {f.name for f in rclone.list()}
    except JameyError as err:
        log.warning("could not list the remote to apply its retention: %s", err.message)
        return
    for backup_id in backup_ids:
        started = time.monotonic()
        try:
            for suffix in (ENCRYPTED_SUFFIX, ARCHIVE_SUFFIX, SIDECAR_SUFFIX):
                if f"{backup_id}{suffix}" in names:
                    rclone.delete(f"{backup_id}{suffix}")
            if vault.catalog.info(backup_id) is not None:
                _record(vault, backup_id, {"status": "pruned", "at": utcnow().isoformat()})
        except JameyError as err:
            log.warning("could not delete backup %s from the remote: %s", backup_id, err.message)
            continue
        vault.record("delete", "success", started, detail=f"{backup_id} (remote copy)", actor=actor)


def remote_only(vault: Vault) -> list[BackupInfo]:
    """Backups on the remote that are not in the local backup directory (their sidecars are
    read from the remote). Raises Unavailable when the remote cannot be listed."""
    rclone = Rclone(vault.settings)
    if not rclone.configured:
        return []
    files = {f.name: f for f in rclone.list()}
    local = set(vault.catalog.ids())
    found = []
    for name, remote_file in files.items():
        for suffix in (ENCRYPTED_SUFFIX, ARCHIVE_SUFFIX):
            backup_id = name[: -len(suffix)]
            if name.endswith(suffix) and is_backup_id(backup_id) and backup_id not in local:
                data: Any = None
                if f"{backup_id}{SIDECAR_SUFFIX}" in files:
                    try:
                        data = json.loads(rclone.cat(f"{backup_id}{SIDECAR_SUFFIX}"))
                    except (Unavailable, ValueError):
                        data = None
                found.append(info_from_sidecar(backup_id, name, remote_file.size, data))
                break
    return found


def pull(
    vault: Vault, backup_id: str, *, trust_unsigned: bool = False, actor: str | None = None
) -> BackupInfo:
    """Fetch a remote-only backup into the backup directory and verify it (signature and every
    checksum); return its BackupInfo. A pulled copy that fails verification is removed again.

    Raises NotFound when the remote does not hold it, InvalidInput for a bad id, Unavailable
    when the remote fails, BackupUnsigned/BackupCorrupt as verify does.
    """
    started = time.monotonic()
    check_backup_id(backup_id)
    try:
        info = _pull(vault, backup_id, trust_unsigned, actor)
    except BaseException as err:
        detail = err.message if isinstance(err, JameyError) else f"{type(err).__name__}: {err}"
        vault.record("pull", "failure", started, detail=f"{backup_id}: {detail}", actor=actor)
        raise
    vault.record("pull", "success", started, size_bytes=info.size_bytes, detail=backup_id, actor=actor)
    return info


def _pull(vault: Vault, backup_id: str, trust_unsigned: bool, actor: str | None) -> BackupInfo:
    if vault.catalog.info(backup_id) is not None:
        return vault.get(backup_id)
    rclone = Rclone(vault.settings)
    if not rclone.configured:
        raise NotFound(
            f"backup {backup_id} is not in {vault.settings.backup_dir} and no JAMEY_BACKUP_REMOTE is set"
        )
    names = {f.name for f in rclone.list()}
    archive_name = next(
        (f"{backup_id}{s}" for s in (ENCRYPTED_SUFFIX, ARCHIVE_SUFFIX) if f"{backup_id}{s}" in names), None
    )
    if archive_name is None:
        raise NotFound(f"backup {backup_id} is neither local nor on the backup remote")
    backup_dir = vault.settings.backup_dir
    backup_dir.mkdir(parents=True, exist_ok=True)
    partial = vault.catalog.partial_path(backup_id)
    target = backup_dir / archive_name
    sidecar = vault.catalog.sidecar_path(backup_id)
    fd = lock_new_file(partial)
    try:
        if f"{backup_id}{SIDECAR_SUFFIX}" in names:
            raw = rclone.cat(f"{backup_id}{SIDECAR_SUFFIX}")
            write_durably(sidecar, raw, vault.catalog.sidecar_temp_path(backup_id, "pull"))
        rclone.get(archive_name, fd)
        os.fsync(fd)
        os.replace(partial, target)
        fsync_path(backup_dir)
        info = vault.verify(backup_id, trust_unsigned=trust_unsigned, actor=actor)
    except BaseException:
        remove_tree(partial)
        target.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return info
