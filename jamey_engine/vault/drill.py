"""Restore drills: a backup is only as good as its last restore.

A drill restores a backup (the newest, or a named one; one only on the remote is pulled first)
into a scratch data directory with a database of its own, never the live data: the restore's
own checks run (signature, every checksum, every layer opens with the manifest's document
counts, the rows load into a database migrated to head), then a sample search answers in every
layer that holds documents and every key row reads back. The verdict and its figures are
recorded as a ``drill`` operation (``backup_last_drill_success_timestamp_seconds``).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jamey_engine.config import Settings
from jamey_engine.errors import JameyError, NotFound
from jamey_engine.oplog import OperationStatus

if TYPE_CHECKING:
    from jamey_engine.vault.core import Vault

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")


@dataclass
class DrillReport:
    """A drill's verdict ("passed" or "failed"), the backup, and what it found."""

    backup_id: str
    verdict: str = "failed"
    reason: str = ""
    documents: dict[str, int] = field(default_factory=dict)
    searches: dict[str, int] = field(default_factory=dict)
    keys: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True when every check of the drill passed."""
        return self.verdict == "passed"

    def summary(self) -> str:
        """One line: the verdict with its figures, or the reason it failed."""
        if not self.passed:
            return f"restore drill of {self.backup_id} FAILED: {self.reason}"
        docs = sum(self.documents.values())
        return (
            f"restore drill of {self.backup_id} passed in {self.seconds:.1f}s: {docs} documents in "
            f"{len(self.documents)} layers, {len(self.searches)} sample searches answered, "
            f"{self.keys} keys and {sum(self.tables.values())} rows restored"
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "backup_id": self.backup_id,
            "verdict": self.verdict,
            "reason": self.reason,
            "documents": self.documents,
            "searches": self.searches,
            "keys": self.keys,
            "tables": self.tables,
            "seconds": round(self.seconds, 3),
        }


def _scratch_settings(live: Settings, scratch: Path) -> Settings:
    """The live settings on a scratch data dir and database; backups are read where they are."""
    data = scratch / "data"
    data.mkdir(mode=0o700)
    return live.with_overrides(data_dir=data, database_url=f"sqlite:///{data / 'drill.db'}")


def run_drill(vault: Vault, backup_id: str = "", *, actor: str | None = None) -> DrillReport:
    """Restore ``backup_id`` (empty: the newest, local or remote) into a scratch directory and
    check it; return the report (a failed check is a "failed" verdict naming the reason, not an
    exception). Raises NotFound when there is no backup at all. Recorded as a ``drill``."""
    from jamey_engine.engine import Engine

    started = time.monotonic()
    if not backup_id:
        infos = vault.list(include_remote=bool(vault.settings.backup_remote))
        if not infos:
            raise NotFound(f"there is no backup to drill in {vault.settings.backup_dir}")
        backup_id = infos[0].id
    report = DrillReport(backup_id)
    scratch = Path(tempfile.mkdtemp(prefix="jamey-drill-"))
    try:
        vault.ensure_local(backup_id, actor=actor)
        manifest = vault.catalog.sidecar_manifest(backup_id)
        drilled = Engine(_scratch_settings(vault.settings, scratch), check_data_dir=False)
        try:
            drilled.vault.restore(backup_id, safety_backup=False, actor=actor)
            report.documents = {layer: drilled.memory.count(layer) for layer in drilled.memory.sizes().layers}
            for layer, count in report.documents.items():
                if not count:
                    continue
                newest = drilled.memory.search(layer, "*", limit=1, order="newest")
                words = _WORD.findall(newest[0].content) if newest else []
                hits = drilled.memory.search(layer, max(words, key=len), limit=5) if words else newest
                if not hits:
                    raise JameyError(f"layer {layer}: a sample search found nothing in {count} documents")
                report.searches[layer] = len(hits)
            keys = drilled.keys.list()
            report.keys = len(keys)
            report.tables = drilled.db.count_rows()
            if manifest is not None and report.keys != manifest.keys:
                raise JameyError(f"{report.keys} keys read back, the manifest says {manifest.keys}")
        finally:
            drilled.close()
        report.verdict = "passed"
    except JameyError as err:
        report.reason = err.message
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.seconds = time.monotonic() - started
    status: OperationStatus = "success" if report.passed else "failure"
    vault.record("drill", status, started, detail=report.summary(), actor=actor)
    return report
