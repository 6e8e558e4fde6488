"""The scheduled backup loop that ``jamey serve`` runs when JAMEY_BACKUP_INTERVAL is set.

Each run takes a backup (``vault.create``) and then applies retention (``vault.retain`` with
the settings' rules: JAMEY_BACKUP_KEEP, 0 keeping all, and JAMEY_BACKUP_KEEP_DAYS). The vault records every
backup, failed or not, in the operation log, so the run shows in /metrics and alerts; a failure
here is also logged, and the loop tries again after a shorter delay.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from jamey_engine.durations import utcnow

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = timedelta(minutes=15)


class BackupScheduler:
    """A daemon thread that backs up every ``interval``; ``stop()`` ends it promptly."""

    def __init__(self, engine: Engine, interval: timedelta) -> None:
        self.engine = engine
        self.interval = interval
        self.runs = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jamey-backup-schedule", daemon=True)

    def start(self) -> BackupScheduler:
        """Start the loop; the first backup is due ``interval`` after the latest one (now if none)."""
        self._thread.start()
        return self

    def first_delay(self) -> float:
        """Seconds until the first scheduled backup."""
        try:
            latest = self.engine.vault.latest()
        except Exception as err:
            log.warning("cannot read the backup catalog (%s: %s); backing up now", type(err).__name__, err)
            return 0.0
        if latest is None:
            return 0.0
        due = latest.created_at + self.interval
        return max(0.0, (due - utcnow()).total_seconds())

    def run_once(self) -> bool:
        """One backup plus retention; True on success. Never raises (failures are logged)."""
        try:
            info = self.engine.vault.create(actor="schedule")
            # The settings' rules (JAMEY_BACKUP_KEEP=0 keeps all).
            deleted = self.engine.vault.retain(actor="schedule")
        except Exception as err:
            self.failures += 1
            log.error("scheduled backup failed: %s: %s", type(err).__name__, err)
            return False
        finally:
            self.runs += 1
        log.info(
            "scheduled backup %s done (%d bytes); retention removed %d old backup(s)",
            info.id,
            info.size_bytes,
            len(deleted),
        )
        return True

    def _loop(self) -> None:
        delay = self.first_delay()
        while not self._stop.wait(delay):
            ok = self.run_once()
            delay = self.interval.total_seconds()
            if not ok:
                delay = min(delay, RETRY_AFTER_FAILURE.total_seconds())

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end and wait up to ``timeout`` s (a running backup finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
