"""The rclone transport of off-site copies: one remote path reaches S3, GCS, Azure, B2, SFTP,
WebDAV and the rest, without a client of our own per store.

Secrets stay out of sight: the remote path (JAMEY_BACKUP_REMOTE, which may be an on-the-fly
remote) is handed to rclone as an ``alias`` remote defined in rclone's environment, and the
config file (JAMEY_RCLONE_CONFIG, 0600) through RCLONE_CONFIG, so neither is ever on a command
line; rclone's messages are scrubbed of both before they reach an error or a log.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jamey_engine.config import Settings
from jamey_engine.errors import ConfigError, Unavailable

REMOTE_NAME = "jameyremote"
# Our own retries (with backoff, across backups) replace rclone's: a remote that is down must
# fail fast, never hold a backup for minutes.
FLAGS = ("--retries", "1", "--low-level-retries", "2", "--contimeout", "5s", "--timeout", "60s")
_SECRET_WORDS = re.compile(r"(?i)\b(\w*(?:pass|secret|key|token|auth)\w*)\s*[=:]\s*[^\s,:'\"]+")
_USERINFO = re.compile(r"//[^/@\s]+@")


@dataclass(frozen=True)
class RemoteFile:
    """One file on the remote: name and size in bytes."""

    name: str
    size: int


class Rclone:
    """Runs rclone against JAMEY_BACKUP_REMOTE; every method raises Unavailable (a one-line,
    scrubbed message) when rclone fails, and ConfigError for an unusable config file."""

    def __init__(self, settings: Settings, timeout: float = 3600.0) -> None:
        self.remote = settings.backup_remote.strip()
        self.config = settings.rclone_config
        self.timeout = timeout

    @property
    def configured(self) -> bool:
        """True when JAMEY_BACKUP_REMOTE is set."""
        return bool(self.remote)

    def _env(self) -> dict[str, str]:
        passed = ("PATH", "HOME", "LANG", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE")
        env = {name: os.environ[name] for name in passed if name in os.environ}
        if self.config:
            path = Path(self.config).expanduser()
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except OSError as err:
                raise ConfigError(
                    "JAMEY_RCLONE_CONFIG", self.config, f"cannot read it ({err.strerror})"
                ) from None
            if mode & 0o077:
                raise ConfigError(
                    "JAMEY_RCLONE_CONFIG", self.config, f"mode {mode:04o} lets others read it; chmod 600 it"
                )
            env["RCLONE_CONFIG"] = str(path)
        else:
            env["RCLONE_CONFIG"] = "/dev/null"
        env[f"RCLONE_CONFIG_{REMOTE_NAME.upper()}_TYPE"] = "alias"
        env[f"RCLONE_CONFIG_{REMOTE_NAME.upper()}_REMOTE"] = self.remote
        return env

    def scrub(self, text: str) -> str:
        """``text`` without the remote path, URL user info or anything shaped like a secret."""
        if self.remote:
            text = text.replace(self.remote, "JAMEY_BACKUP_REMOTE")
        if self.config:
            text = text.replace(self.config, "JAMEY_RCLONE_CONFIG")
        text = _USERINFO.sub("//***@", text)
        return _SECRET_WORDS.sub(lambda match: f"{match.group(1)}=***", text)

    def run(self, *args: str, what: str, into: int | None = None) -> str:
        """Run ``rclone ARGS`` (paths relative to the remote as ``jameyremote:NAME``); return its
        output, or write it to the open descriptor ``into``."""
        command = ["rclone", *FLAGS, *args]
        try:
            done = subprocess.run(
                command,
                env=self._env(),
                stdout=subprocess.PIPE if into is None else into,
                stderr=subprocess.PIPE,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise Unavailable(
                "rclone is not installed (apt-get install rclone); no off-site copy made"
            ) from None
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{what} on the backup remote timed out after {self.timeout:.0f}s") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = self.scrub(lines[-1]) if lines else f"exit status {done.returncode}"
            reason = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "", reason)
            raise Unavailable(f"{what} on the backup remote failed: {reason}")
        return done.stdout or ""

    @staticmethod
    def path(name: str = "") -> str:
        """The rclone path of ``name`` on the remote."""
        return f"{REMOTE_NAME}:{name}"

    def put(self, source: Path, name: str) -> None:
        """Copy the local file ``source`` to ``name`` on the remote."""
        self.run("copyto", str(source), self.path(name), what=f"copying {name}")

    def get(self, name: str, into: int) -> None:
        """Write the remote file ``name`` into the open file descriptor ``into``."""
        self.run("cat", self.path(name), what=f"fetching {name}", into=into)

    def cat(self, name: str) -> bytes:
        """The content of the (small) file ``name`` on the remote."""
        return self.run("cat", self.path(name), what=f"reading {name}").encode()

    def delete(self, name: str) -> None:
        """Remove ``name`` from the remote."""
        self.run("deletefile", self.path(name), what=f"deleting {name}")

    def list(self) -> list[RemoteFile]:
        """Every file at the top of the remote path (an absent path lists as empty)."""
        out = self.run("lsjson", "--files-only", self.path(), what="listing")
        entries: Any = json.loads(out or "[]")
        return [RemoteFile(str(e["Name"]), int(e["Size"])) for e in entries if isinstance(e, dict)]

    def stat(self, name: str) -> tuple[int | None, str | None]:
        """The size of ``name`` on the remote (None when absent) and its SHA-256 when the remote
        keeps one (None otherwise), in one listing."""
        out = self.run(
            "lsjson", "--files-only", "--hash", "--hash-type", "sha256", self.path(), what="listing"
        )
        for entry in json.loads(out or "[]"):
            if isinstance(entry, dict) and entry.get("Name") == name:
                hashes = entry.get("Hashes")
                found = hashes.get("sha256") if isinstance(hashes, dict) else None
                return int(entry["Size"]), str(found) if found else None
        return None, None

    def sha256(self, name: str) -> str:
        """The SHA-256 of ``name`` computed by rclone from a fresh download (for remotes that keep
        no SHA-256 of their own), so a corrupted copy is caught either way."""
        out = self.run("hashsum", "sha256", "--download", self.path(name), what=f"checking {name}")
        return out.split()[0] if out.split() else ""
