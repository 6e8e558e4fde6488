"""Backup signatures: HMAC-SHA256 of each manifest under a server key kept outside the backups.

age recipients are public and the manifest sits inside the archive it describes, so anyone
who can write the backup directory could build a consistent, encrypted archive of their own.
The signature closes that: only the holder of the signing key (JAMEY_BACKUP_SIGNING_KEY_FILE,
generated 0600 on first use, never in the backup directory) can make a manifest that restore,
verify and pull accept. The signature is stored twice: as the archive's ``manifest.sig``
member (after ``manifest.json``) and in the catalog sidecar, so a restore knows the signed
manifest before it unpacks a byte.

The key itself never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jamey_engine.config import Settings
from jamey_engine.errors import BackupCorrupt, BackupUnsigned, ConfigError
from jamey_engine.fsutil import fsync_path
from jamey_engine.vault.manifest import SIGNATURE_NAME, Manifest

VARIABLE = "JAMEY_BACKUP_SIGNING_KEY_FILE"
ALGORITHM = "HMAC-SHA256"
MAX_SIGNATURE_BYTES = 4096
_KEY_BYTES = 32


@dataclass(frozen=True)
class SigningKey:
    """The server's backup signing key; ``key_id`` is a public fingerprint of it."""

    secret: bytes = field(repr=False)
    path: Path

    @property
    def key_id(self) -> str:
        """A fingerprint that names the key in signatures and messages (not the key)."""
        return hashlib.sha256(b"jamey-backup-signing-key\0" + self.secret).hexdigest()[:16]

    def sign(self, manifest: Manifest) -> dict[str, str]:
        """The signature record of ``manifest`` (over its canonical JSON bytes)."""
        mac = hmac.new(self.secret, manifest.to_json(), hashlib.sha256).hexdigest()
        return {"algorithm": ALGORITHM, "key_id": self.key_id, "signature": mac}

    def signature_bytes(self, manifest: Manifest) -> bytes:
        """The ``manifest.sig`` member's content for ``manifest``."""
        return json.dumps(self.sign(manifest), sort_keys=True).encode()

    def is_valid(self, manifest: Manifest, record: Any) -> bool:
        """True when ``record`` is this key's signature of ``manifest`` (constant-time compare)."""
        if not isinstance(record, dict) or record.get("algorithm") != ALGORITHM:
            return False
        given = record.get("signature")
        if not isinstance(given, str):
            return False
        return hmac.compare_digest(given, self.sign(manifest)["signature"])

    def check(self, backup_id: str, manifest: Manifest, record: Any, *, trust_unsigned: bool) -> bool:
        """Accept ``manifest`` only if ``record`` signs it under this key; return True if signed.

        Raises BackupUnsigned when there is no signature (unless ``trust_unsigned``, which then
        returns False) and BackupCorrupt(file="manifest.sig") when the signature is wrong
        (forged, or made under another key: the message names both fingerprints).
        """
        if record is None:
            if trust_unsigned:
                return False
            raise BackupUnsigned(
                f"backup {backup_id} is unsigned (made before backups were signed, or forged); "
                "refused: an admin may pass --trust-unsigned for a backup known to be genuine"
            )
        if self.is_valid(manifest, record):
            return True
        other = record.get("key_id") if isinstance(record, dict) else None
        under = f" (signed under key {other!s:.16}, the server's is {self.key_id})" if other else ""
        raise BackupCorrupt(
            f"backup {backup_id}: its manifest signature does not match the server's signing key"
            f"{under}; it was forged or altered (or, on a new machine, JAMEY_BACKUP_SIGNING_KEY_FILE is "
            "not the key from the emergency kit); refused before anything was unpacked",
            file=SIGNATURE_NAME,
        )


def parse_signature(raw: bytes | None) -> dict[str, Any] | None:
    """The signature record in a ``manifest.sig`` member (None when absent); raises
    BackupCorrupt when the member is present but not a signature record."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        raise BackupCorrupt(f"{SIGNATURE_NAME} is not a signature record", file=SIGNATURE_NAME)
    return data


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def load_signing_key(settings: Settings) -> SigningKey:
    """The signing key at JAMEY_BACKUP_SIGNING_KEY_FILE, generated (0600, 32 random bytes as
    hex) when the file does not exist yet.

    Raises ConfigError naming the variable when the file lies inside the backup directory
    (whoever can write backups could read it), cannot be read or written, or holds no key.
    """
    path = settings.backup_signing_key_file
    if _inside(path, settings.backup_dir):
        raise ConfigError(
            VARIABLE, str(path), f"it lies inside the backup directory {settings.backup_dir}; keep it apart"
        )
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = _create(path)
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise ConfigError(VARIABLE, str(path), f"cannot read the file ({reason})") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise ConfigError(VARIABLE, str(path), "the file holds no signing key (64 hex digits expected)")
    return SigningKey(secret, path)


def _create(path: Path) -> str:
    """Write a new key to ``path`` (0600); if another process created it first, its key wins.

    The key is written to a temporary and hard-linked into place, so no reader ever sees a
    half-written key file.
    """
    text = secrets.token_hex(_KEY_BYTES)
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return path.read_text().strip()
        fsync_path(path.parent)
    except OSError as err:
        raise ConfigError(VARIABLE, str(path), f"cannot create the file ({err.strerror})") from None
    finally:
        temp.unlink(missing_ok=True)
    return text
