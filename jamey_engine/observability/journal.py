"""The service's log lines from journald, when it runs under systemd and the journal is readable.

A diagnosis reads the service's warnings and errors around the firing time. Under systemd
(``deploy/systemd/jamey.service``) they are in the journal: :func:`systemd_unit` finds the unit
this process runs in (systemd sets ``INVOCATION_ID`` for every service process, and the unit is the
last ``.service`` part of the process's cgroup), and :func:`read_journal` runs
``journalctl -u UNIT -o json --since @EPOCH`` and parses its lines (:func:`parse_journal`). A
journal that cannot be read (no journald, no permission, ``journalctl`` missing) answers None, and
the diagnosis reads the stack's log file instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

JOURNALCTL = "journalctl"
TIMEOUT_SECONDS = 10.0
MAX_ENTRIES = 5000  # the newest entries read at most (-n), so a chatty unit cannot stall a diagnosis
WARNING_PRIORITY = 4  # syslog priorities: 0 emerg .. 3 err, 4 warning, 5 notice, 6 info, 7 debug
_NOTEWORTHY = re.compile(r"\b(ERROR|CRITICAL|WARNING|Traceback|Exception)\b")
_UNIT = re.compile(r"([A-Za-z0-9:_.\\@-]+\.service)$")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class JournalEntry:
    """One journal entry: when, its syslog priority (None when absent), who wrote it, the text."""

    at: datetime
    priority: int | None
    identifier: str
    message: str

    @property
    def noteworthy(self) -> bool:
        """A warning or worse, or a line that says ERROR, WARNING, Traceback..."""
        return (self.priority is not None and self.priority <= WARNING_PRIORITY) or bool(
            _NOTEWORTHY.search(self.message)
        )

    def line(self) -> str:
        """The entry as one log line: ``2026-12-06T05:00:00Z jamey[1234]: message``."""
        return f"{self.at:%Y-%m-%dT%H:%M:%SZ} {self.identifier}: {self.message}"


def _message(value: object) -> str | None:
    # journalctl writes MESSAGE as a string, or as an array of bytes when it is not valid UTF-8
    # (or holds control characters), or null when it is too large to show.
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", errors="replace")
    return None


def parse_journal(lines: Iterable[str]) -> list[JournalEntry]:
    """The entries of ``journalctl -o json`` output (one JSON object a line), oldest first.
    Lines that are not such objects, and entries without a time or a message, are skipped."""
    entries: list[JournalEntry] = []
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(item, dict):
            continue
        message = _message(item.get("MESSAGE"))
        try:
            micros = int(str(item.get("__REALTIME_TIMESTAMP")))
        except ValueError:
            continue
        if message is None:
            continue
        try:
            priority: int | None = int(str(item.get("PRIORITY")))
        except ValueError:
            priority = None
        name = str(item.get("SYSLOG_IDENTIFIER") or item.get("_COMM") or item.get("_SYSTEMD_UNIT") or "?")
        pid = item.get("_PID") or item.get("SYSLOG_PID")
        identifier = f"{name}[{pid}]" if pid else name
        at = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
        entries.append(JournalEntry(at, priority, identifier, message.rstrip("\n")))
    entries.sort(key=lambda entry: entry.at)
    return entries


def unit_from_cgroup(text: str) -> str | None:
    """The systemd service unit in ``/proc/<pid>/cgroup`` text (cgroup v2 ``0::/system.slice/jamey.service``
    or v1's ``name=systemd`` line); None when the process is in no service unit."""
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3 or parts[1] not in ("", "name=systemd"):
            continue
        for part in reversed(parts[2].split("/")):
            match = _UNIT.match(part)
            if match:
                return match.group(1)
    return None


def systemd_unit(
    configured: str = "",
    environ: Mapping[str, str] | None = None,
    cgroup_path: Path = Path("/proc/self/cgroup"),
) -> str | None:
    """The unit ``configured`` (JAMEY_SYSTEMD_UNIT) when set; else the service unit this process
    runs in when systemd started it (``INVOCATION_ID`` set and the cgroup names a ``.service``);
    else None."""
    if configured.strip():
        return configured.strip()
    env = os.environ if environ is None else environ
    if not env.get("INVOCATION_ID"):
        return None
    try:
        return unit_from_cgroup(cgroup_path.read_text())
    except OSError:
        return None


def read_journal(
    unit: str, since: datetime, *, journalctl: str = JOURNALCTL, run: Runner = subprocess.run
) -> list[JournalEntry] | None:
    """The journal entries of ``unit`` since ``since``, oldest first (at most MAX_ENTRIES, the
    newest); None when the journal cannot be read: ``journalctl`` missing, failing, timing out,
    or answering nothing at all (no journal, or no permission to read the unit's entries: then
    journalctl exits 0 and prints only a hint)."""
    command = [
        journalctl,
        "-u",
        unit,
        "-o",
        "json",
        "--since",
        f"@{int(since.timestamp())}",
        "-n",
        str(MAX_ENTRIES),
        "--no-pager",
        "-q",
    ]
    try:
        done = run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return parse_journal(done.stdout.splitlines())
