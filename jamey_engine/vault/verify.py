"""Verifying a backup: every checksum against its manifest, and the manifest against its signature.

A verify is one pass over the archive. An extraction (a restore's staging, a drill) is two:
first the whole archive is checked against the signed manifest with nothing written, then it
is unpacked while every member is held to that manifest again (name, size and running total
at its header, SHA-256 at its end), so a forged or damaged archive is refused before a byte
reaches the disk, and one swapped between the passes stops at its first wrong member.

The signed manifest comes from the catalog sidecar when its signature holds there (the usual
case: a zstd bomb or an oversized member then stops at its header in the first pass), else
from the archive's own ``manifest.json`` and ``manifest.sig``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jamey_engine.durations import utcnow
from jamey_engine.errors import BackupCorrupt
from jamey_engine.progress import Progress, no_progress
from jamey_engine.vault.archive import ScanResult, scan_archive
from jamey_engine.vault.crypto import is_encrypted
from jamey_engine.vault.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest
from jamey_engine.vault.signing import SigningKey, load_signing_key, parse_signature

if TYPE_CHECKING:
    from jamey_engine.vault.core import Vault

log = logging.getLogger(__name__)


def check_scan(vault: Vault, backup_id: str, result: ScanResult) -> Manifest:
    """Compare what a pass over the archive found against its manifest; return the manifest.

    Raises BackupCorrupt naming the first damaged, missing or unexpected member.
    """
    catalog_manifest = vault.catalog.sidecar_manifest(backup_id)
    scanned = {member.name: member for member in result.members}
    if result.manifest is None:
        if catalog_manifest is not None:
            for entry in catalog_manifest.files:
                member = scanned.get(entry.path)
                if member is None or member.sha256 != entry.sha256:
                    raise BackupCorrupt(
                        f"backup {backup_id}: {entry.path} is damaged or missing", file=entry.path
                    )
        raise BackupCorrupt(f"backup {backup_id}: {MANIFEST_NAME} is missing", file=MANIFEST_NAME)
    manifest = Manifest.from_json(result.manifest)
    if manifest.id != backup_id:
        raise BackupCorrupt(
            f"backup {backup_id}: its manifest names backup {manifest.id}", file=MANIFEST_NAME
        )
    for entry in manifest.files:
        member = scanned.get(entry.path)
        if member is None:
            raise BackupCorrupt(f"backup {backup_id}: {entry.path} is missing", file=entry.path)
        if member.size != entry.size or member.sha256 != entry.sha256:
            raise BackupCorrupt(
                f"backup {backup_id}: {entry.path} is damaged (SHA-256 {member.sha256[:16]}…, "
                f"expected {entry.sha256[:16]}…)",
                file=entry.path,
            )
    listed = {entry.path for entry in manifest.files} | {MANIFEST_NAME, SIGNATURE_NAME}
    for member in result.members:
        if member.name not in listed:
            raise BackupCorrupt(f"backup {backup_id}: {member.name} is not in the manifest", file=member.name)
    return manifest


def signed_sidecar_manifest(vault: Vault, backup_id: str, key: SigningKey) -> Manifest | None:
    """The sidecar's manifest when the sidecar's signature of it holds under ``key``, else None
    (a missing, unsigned or forged sidecar is no evidence either way: the archive decides)."""
    data = vault.catalog.read_sidecar(backup_id)
    manifest = vault.catalog.sidecar_manifest(backup_id)
    if data is None or manifest is None or manifest.id != backup_id:
        return None
    return manifest if key.is_valid(manifest, data.get("signature")) else None


def record_verify(
    vault: Vault,
    backup_id: str,
    manifest: Manifest | None,
    error: BackupCorrupt | None,
    signature: dict[str, Any] | None = None,
) -> None:
    """Store a verification result (and the archive's checked signature) in the catalog; best
    effort: a full disk only logs."""
    manifest = manifest or vault.catalog.sidecar_manifest(backup_id)
    if manifest is None:
        return
    result: dict[str, Any] = {"status": "ok" if error is None else "corrupt", "at": utcnow().isoformat()}
    if error is not None:
        result.update(message=error.message, file=error.file)
    fields: dict[str, Any] = {"signature": signature} if signature is not None else {}
    try:
        size = vault.catalog.archive_path(backup_id).stat().st_size
        vault.catalog.write_sidecar(manifest, size, result, "verify", **fields)
    except OSError:
        log.warning("could not record the verification of backup %s", backup_id, exc_info=True)


def scan(
    vault: Vault,
    backup_id: str,
    progress: Progress | None = None,
    *,
    extract_to: Path | None = None,
    stage: str = "verifying",
    trust_unsigned: bool = False,
) -> Manifest:
    """Stream through a backup (optionally extracting it), check its signature and every
    checksum, record the result; return the manifest.

    An encrypted backup is decrypted with JAMEY_BACKUP_IDENTITY_FILE (or the passphrase). When
    extracting, the whole archive is first checked with nothing written (see the module
    docstring). Raises NotFound; BackupUnsigned for a backup without a signature unless
    ``trust_unsigned``; BackupCorrupt naming the damaged file (``manifest.sig`` for a wrong
    signature, "archive" for a failed age authentication); BackupLocked (no usable identity:
    nothing recorded); ConfigError for an unusable signing key; OSError from writing
    ``extract_to``.
    """
    info = vault.get(backup_id)
    report = progress or no_progress
    key = load_signing_key(vault.settings)
    catalog_manifest = vault.catalog.sidecar_manifest(backup_id)
    order = [entry.path for entry in catalog_manifest.files] if catalog_manifest else []
    encrypted = is_encrypted(info.path)
    keys = vault.backup_keys() if encrypted else None
    trusted = signed_sidecar_manifest(vault, backup_id, key)

    def one_pass(target: Path | None, expected: Manifest | None, label: str) -> tuple[Manifest, Any]:
        result = scan_archive(
            info.path,
            extract_to=target,
            keep=lambda name: name not in (MANIFEST_NAME, SIGNATURE_NAME),
            expected_order=order,
            on_progress=lambda done, total: report(done, total, label),
            keys=keys,
            label=f"backup {backup_id}",
            expected=expected,
        )
        manifest = check_scan(vault, backup_id, result)
        signature = parse_signature(result.signature)
        key.check(backup_id, manifest, signature, trust_unsigned=trust_unsigned)
        if expected is not None and manifest.to_json() != expected.to_json():
            raise BackupCorrupt(
                f"backup {backup_id}: the archive's manifest differs from the signed one", file=MANIFEST_NAME
            )
        return manifest, signature

    try:
        # Authenticating (age) and checking every member happen in this first pass, before
        # the first byte is unpacked: age would only fail at a damaged chunk, after the chunks
        # before it were written out.
        first = "authenticating" if encrypted and extract_to is not None else "verifying"
        manifest, signature = one_pass(None, trusted, first if extract_to is not None else stage)
        if extract_to is not None:
            manifest, signature = one_pass(extract_to, manifest, stage)
    except BackupCorrupt as err:
        record_verify(vault, backup_id, None, err)
        raise
    record_verify(vault, backup_id, manifest, None, signature)
    return manifest
