"""The scheduled loops of ``jamey serve``: backups (JAMEY_BACKUP_INTERVAL) and memory retention
(JAMEY_RETENTION_INTERVAL, see :class:`RetentionScheduler`).

Each backup run takes a backup (``vault.create``) and then applies retention (``vault.retain`` with
the settings' rules: JAMEY_BACKUP_KEEP, 0 keeping all, and JAMEY_BACKUP_KEEP_DAYS). The vault records every
backup, failed or not, in the operation log, so the run shows in /metrics and alerts; a failure
here is also logged, and the loop tries again after a shorter delay.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from jamey_engine.durations import utcnow
from jamey_engine.fsutil import try_lease

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = timedelta(minutes=15)
# How often a worker without a lease tries to take it (so a dead holder is replaced this soon).
LEASE_RETRY_SECONDS = 5.0


class SchedulerLease:
    """The right to run one kind of scheduled work, held by at most one process at a time.

    An exclusive ``flock`` on ``<data dir>/run/<name>.lease``, taken without waiting and held
    until :meth:`release` or the process's end: the kernel drops the lock when its holder dies,
    however it dies, so a worker that retries :meth:`acquire` (the schedulers do, every
    ``LEASE_RETRY_SECONDS``) takes over from a dead one. Every service worker builds the same
    lease for a job; only the holder runs the job. Not shared between threads of one process:
    each scheduler builds its own (two leases of one name in one process also exclude each other).
    """

    def __init__(self, data_dir: Path, name: str) -> None:
        self.path = Path(data_dir) / "run" / f"{name}.lease"
        self.name = name
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        """Whether this object holds the lease now."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lease if no other holder has it; True when held (already, or now). Never blocks."""
        with self._lock:
            if self._fd is not None:
                return True
            try:
                self._fd = try_lease(self.path, 0o600)
            except OSError as err:
                log.warning("cannot open the %s lease %s: %s", self.name, self.path, err)
                return False
            return self._fd is not None

    def release(self) -> None:
        """Give the lease up (closing the file drops the lock)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _retain(engine: Engine) -> list[str]:
    """The backup retention through its backup-delete plan, as the scheduler (an admin actor
    named ``schedule``); the local ids deleted. When JAMEY_APPROVALS asks a second key for
    backup-delete, the plan waits for it (logged) and nothing is deleted now."""
    from jamey_engine.errors import Conflict
    from jamey_engine.plans.actors import Actor
    from jamey_engine.plans.vault_actions import apply_backup_retention

    try:
        applied = apply_backup_retention(engine, Actor("schedule", ("admin",)))
    except Conflict as err:
        log.warning("scheduled backup retention not applied: %s", err.message)
        return []
    return [] if applied is None else list(applied.result["deleted_local"])


class BackupScheduler:
    """A daemon thread that backs up every ``interval``; ``stop()`` ends it promptly.

    With a ``lease`` (as ``jamey serve`` passes, one per worker), the loop backs up only while
    it holds the lease and otherwise retries taking it every ``lease_retry`` seconds, so of
    several workers exactly one takes the scheduled backups, and another takes over within
    ``lease_retry`` seconds when that one dies. The next backup is always due ``interval`` after
    the latest one in the catalog, whichever process took it.
    """

    def __init__(
        self,
        engine: Engine,
        interval: timedelta,
        lease: SchedulerLease | None = None,
        lease_retry: float = LEASE_RETRY_SECONDS,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.lease = lease
        self.lease_retry = lease_retry
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
        """One backup plus retention (see ``_retain``); True on success. Never raises (failures are logged)."""
        try:
            info = self.engine.vault.create(actor="schedule")
            # The settings' rules (JAMEY_BACKUP_KEEP=0 keeps all), through a backup-delete plan.
            deleted = _retain(self.engine)
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
        if self.lease is not None:
            while not self.lease.acquire():
                if self._stop.wait(self.lease_retry):
                    return
            log.info("scheduled backups run in this process (pid %d), which holds the lease", os.getpid())
        delay = self.first_delay()
        while not self._stop.wait(delay):
            ok = self.run_once()
            delay = self.interval.total_seconds()
            if not ok:
                delay = min(delay, RETRY_AFTER_FAILURE.total_seconds())

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end and wait up to ``timeout`` s (a running backup finishes first);
        then give up the lease, if held."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.lease is not None and not self._thread.is_alive():
            self.lease.release()


RETENTION_LOCK = "retention.schedule.lock"
# How often a process that does not hold the schedule lock tries to take it over.
TAKE_OVER_EVERY = timedelta(seconds=30)


class RetentionScheduler:
    """A daemon thread that applies the memory retention policies every ``interval``.

    Exactly one process per data dir runs the schedule: the one holding an exclusive file lock
    (``retention.schedule.lock`` in the data dir) for as long as it lives. The others stay idle
    and try to take the lock over now and then, so when the holder dies (the kernel frees the
    lock) another one carries on. Each run is recorded by ``Engine.apply_retention`` (actor
    ``retention``), failures included, so /metrics and the alert see it; a failure is also logged.
    """

    def __init__(self, engine: Engine, interval: timedelta) -> None:
        self.engine = engine
        self.interval = interval
        self.runs = 0
        self.failures = 0
        self.lock_path = engine.settings.data_dir / RETENTION_LOCK
        self._lock_fd: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jamey-retention-schedule", daemon=True)

    def start(self) -> RetentionScheduler:
        """Start the loop; the first run is due ``interval`` after the last scheduled one (now if none)."""
        self._thread.start()
        return self

    @property
    def owner(self) -> bool:
        """True while this process holds the schedule lock."""
        return self._lock_fd is not None

    def take_lock(self) -> bool:
        """Take the schedule lock if no other process holds it; True when this process holds it."""
        if self._lock_fd is not None:
            return True
        self._lock_fd = try_lease(self.lock_path)
        if self._lock_fd is None:
            return False
        log.info("this process runs the retention schedule (every %s)", self.interval)
        return True

    def first_delay(self) -> float:
        """Seconds until the next run: the last scheduled run plus the interval (now if none)."""
        from jamey_engine.retention import next_scheduled_run

        try:
            due = next_scheduled_run(self.engine.db, self.interval)
        except Exception as err:
            log.warning(
                "cannot read the operation log (%s: %s); applying retention now", type(err).__name__, err
            )
            return 0.0
        return 0.0 if due is None else max(0.0, (due - utcnow()).total_seconds())

    def run_once(self) -> bool:
        """One retention run; True on success. Never raises (failures are recorded and logged)."""
        try:
            run = self.engine.apply_retention(actor="retention")
        except Exception as err:
            self.failures += 1
            log.error("scheduled retention failed: %s: %s", type(err).__name__, err)
            return False
        finally:
            self.runs += 1
        deleted = sum(layer.deleted for layer in run.layers)
        log.info(
            "scheduled retention done: %d layer(s) with a policy, %d memories removed",
            len(run.layers),
            deleted,
        )
        return True

    def _loop(self) -> None:
        wait = min(self.interval, TAKE_OVER_EVERY).total_seconds()
        while not self.take_lock():
            if self._stop.wait(wait):
                return
        delay = self.first_delay()
        while not self._stop.wait(delay):
            self.run_once()
            delay = self.interval.total_seconds()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end, wait up to ``timeout`` s (a running apply finishes first), free the lock."""
        import os

        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._lock_fd is not None and not self._thread.is_alive():
            os.close(self._lock_fd)
            self._lock_fd = None


# How often the runbook schedule loop looks for due schedules at most (a schedule added by the
# CLI or another worker is seen this soon); it wakes earlier for a slot that comes before.
RUNBOOK_SCHEDULE_POLL_SECONDS = 5.0


class RunbookScheduler:
    """A daemon thread that starts the runs of due runbook schedules (runbooks/schedules.py).

    Behind a ``lease`` (one per worker, as for backups) only the holder starts runs, so of
    several workers exactly one does, and another takes over within ``lease_retry`` seconds when
    it dies. Each pass claims every due schedule (a conditional UPDATE, so a slot is started once
    even if two passes raced) and starts its run with actor ``schedule``; a slot missed while the
    service was down is due at the first pass and runs once.
    """

    def __init__(
        self,
        engine: Engine,
        lease: SchedulerLease | None = None,
        lease_retry: float = LEASE_RETRY_SECONDS,
        poll: float = RUNBOOK_SCHEDULE_POLL_SECONDS,
    ) -> None:
        self.engine = engine
        self.lease = lease
        self.lease_retry = lease_retry
        self.poll = poll
        self.started: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jamey-runbook-schedules", daemon=True)

    def start(self) -> RunbookScheduler:
        """Start the loop (its first pass runs at once once the lease is held)."""
        self._thread.start()
        return self

    def run_once(self) -> list[str]:
        """One pass: start the due schedules' runs; their ids. Never raises (failures are logged)."""
        from jamey_engine.runbooks.launch import start_waiting
        from jamey_engine.runbooks.schedules import run_due

        try:
            # Runs queued behind the caps whose slot freed without a runner to start them
            # (one was killed, or reaped): the scheduler starts them.
            start_waiting(self.engine)
            started = run_due(self.engine)
        except Exception as err:
            log.error("runbook schedules pass failed: %s: %s", type(err).__name__, err)
            return []
        self.started.extend(started)
        return started

    def delay(self) -> float:
        """Seconds until the next pass: the earliest slot, at most ``poll``."""
        from jamey_engine.runbooks.schedules import next_due_at

        try:
            due = next_due_at(self.engine.db)
        except Exception:
            return self.poll
        if due is None:
            return self.poll
        return min(self.poll, max(0.0, (due - utcnow()).total_seconds()) + 0.05)

    def _loop(self) -> None:
        if self.lease is not None:
            while not self.lease.acquire():
                if self._stop.wait(self.lease_retry):
                    return
            log.info("runbook schedules run in this process (pid %d), which holds the lease", os.getpid())
        delay = 0.0
        while not self._stop.wait(delay):
            self.run_once()
            delay = self.delay()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end, wait up to ``timeout`` s, then give up the lease if held."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.lease is not None and not self._thread.is_alive():
            self.lease.release()
