"""The backup manifest: what one archive holds, and the backup id format.

The manifest is the archive's last member (``manifest.json``): only once every file has
been written are all checksums known. A copy of it lives in the catalog sidecar so that
listing never decompresses an archive.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from jamey_engine.errors import BackupCorrupt, InvalidInput

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# The manifest's HMAC signature (signing.py): the archive's very last member.
SIGNATURE_NAME = "manifest.sig"
DATABASE_NAME = "database.json"
MEMORY_PREFIX = "memory/"
ARCHIVE_SUFFIX = ".tar.zst"
# An age-encrypted backup: the same .tar.zst stream inside an age file.
ENCRYPTED_SUFFIX = ".tar.zst.age"

_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def new_backup_id(now: datetime) -> str:
    """A sortable id such as ``20261125T193000Z-1a2b3c`` (UTC time, then 6 random hex digits)."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def is_backup_id(text: str) -> bool:
    """True when ``text`` has the backup id format."""
    return isinstance(text, str) and bool(_ID_PATTERN.match(text))


def check_backup_id(backup_id: str) -> str:
    """Return ``backup_id`` if it has the id format; raise InvalidInput naming the value otherwise.

    The check also keeps ids from naming paths outside the backup directory.
    """
    if not isinstance(backup_id, str) or not _ID_PATTERN.match(backup_id):
        raise InvalidInput(
            f"backup id {backup_id!r} is not a backup id (expected the form 20261125T193000Z-1a2b3c; "
            "see `jamey backup list`)"
        )
    return backup_id


@dataclass(frozen=True)
class FileEntry:
    """One archived file: its path inside the archive, SHA-256 (hex) and size in bytes."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """Everything a backup promises: identity, files with checksums, and what the data held."""

    id: str
    created_at: datetime
    engine_version: str
    dialect: str
    files: tuple[FileEntry, ...]
    documents: dict[str, int]
    keys: int
    tables: dict[str, int]
    label: str = ""
    compression: str = "zstd"
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        """Uncompressed bytes of every file in the archive (the manifest aside)."""
        return sum(entry.size for entry in self.files)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601)."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["files"] = [asdict(entry) for entry in self.files]
        return data

    def to_json(self) -> bytes:
        """The manifest as UTF-8 JSON, as stored in the archive."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True).encode()

    @classmethod
    def from_dict(cls, data: Any, *, source: str = MANIFEST_NAME) -> Manifest:
        """Parse a manifest dict; raise BackupCorrupt(file=source) when it is not a valid manifest."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            version = int(data.get("format_version", 0))
            if version != FORMAT_VERSION:
                raise ValueError(f"format_version {version} is not {FORMAT_VERSION}")
            files = tuple(
                FileEntry(path=str(f["path"]), sha256=str(f["sha256"]), size=int(f["size"]))
                for f in data["files"]
            )
            return cls(
                id=check_backup_id(str(data["id"])),
                created_at=datetime.fromisoformat(str(data["created_at"])),
                engine_version=str(data["engine_version"]),
                dialect=str(data["dialect"]),
                files=files,
                documents={str(k): int(v) for k, v in dict(data["documents"]).items()},
                keys=int(data["keys"]),
                tables={str(k): int(v) for k, v in dict(data["tables"]).items()},
                label=str(data.get("label", "")),
                compression=str(data.get("compression", "zstd")),
                format_version=version,
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, InvalidInput) as err:
            raise BackupCorrupt(f"{source} is not a valid backup manifest: {err}", file=source) from None

    @classmethod
    def from_json(cls, raw: bytes, *, source: str = MANIFEST_NAME) -> Manifest:
        """Parse manifest JSON bytes; raise BackupCorrupt(file=source) on any damage."""
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BackupCorrupt(f"{source} is damaged (not JSON: {err})", file=source) from None
        return cls.from_dict(data, source=source)
