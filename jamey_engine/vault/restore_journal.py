"""A restore's point of no return, and how the next start finishes a restore that was killed.

A restore changes two stores that cannot share a transaction: the memory layers (a pointer
file naming one generation per layer) and the database rows. The journal makes the pair
atomic as seen after a SIGKILL at any moment:

1. Before anything live changes, the staged layers are installed as new generations (not yet
   named by CURRENT), the current rows are copied to the way-back directory, and the journal
   (``memory/RESTORE.journal``: the previous and the staged generations, the way-back path and
   a marker) is written durably. From now on no sweep removes either side's generations.
2. In one database transaction: the backup's rows are loaded and the restore's ``success``
   row is inserted into the operation log with the journal's marker as its detail; CURRENT is
   switched to the staged generations; then the transaction commits. **The commit is the point
   of no return**: the marker row exists in the database if and only if the new rows do.
3. After the commit the new state is verified; only then are the previous generations, the
   database copy and the journal removed.

The next start (:func:`recover`, run when a memory store opens and before every restore) finds
the journal, asks the database whether the marker row exists, and rolls forward (CURRENT names
the staged generations; the previous ones go) or back (CURRENT names the previous generations
again; the staged ones go). Never a mix: the memories and the keys both come from the backup,
or both from before.

A cancel before the point of no return stops cleanly (everything is rolled back); a cancel
after it waits for the end (:func:`past_point_of_no_return` tells the runbook runner to wait
before killing a kernel; SIGTERM and SIGINT are held back in the restoring thread meanwhile).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from jamey_engine.errors import StorageCorrupt
from jamey_engine.fsutil import fsync_path, remove_tree
from jamey_engine.models import Operation

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.memory import MemoryStore

log = logging.getLogger(__name__)

JOURNAL_NAME = "RESTORE.journal"  # beside CURRENT; memory/generations.py pins what it names
LOCK_NAME = ".restore.lock"

# Named steps of a restore, in order (for the crash tests and the progress text).
STEPS = (
    "staged",  # extracted, checked; nothing live changed
    "safety-backup",  # the safety backup is written
    "generations-prepared",  # new generations and the database copy written, journal durable
    "rows-loaded",  # the backup's rows loaded in the open transaction (not committed)
    "layers-switched",  # CURRENT names the staged generations (transaction still open)
    "committed",  # the point of no return has passed
    "verified",  # the new state checked; the way back still on disk
    "cleaned",  # the way back and the journal removed
)

# A test (or a debugger) may set this to be called with each step's name as it is reached.
step_hook: Callable[[str], None] | None = None


def step(name: str) -> None:
    """Announce that the restore reached step ``name`` (see STEPS)."""
    assert name in STEPS, name
    if step_hook is not None:
        step_hook(name)


@dataclass
class Journal:
    """What a restore in flight changes, written durably before anything live changes."""

    backup_id: str
    previous: dict[str, str]  # {layer: generation} before the restore
    staged: dict[str, str]  # {layer: generation} of the backup's layers
    way_back: str  # directory holding database.json: the rows before the restore
    marker: str  # the operation-log detail whose row exists once the restore committed
    phase: str = "prepared"  # prepared | committing | committed
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def new(
        cls, backup_id: str, detail: str, previous: dict[str, str], staged: dict[str, str], way_back: Path
    ) -> Journal:
        token = secrets.token_hex(6)
        return cls(backup_id, previous, staged, str(way_back), f"{detail} [restore {token}]")


def journal_path(memory_dir: Path) -> Path:
    """Where the journal of ``memory_dir``'s restore in flight lives."""
    return memory_dir / JOURNAL_NAME


def write_journal(memory_dir: Path, journal: Journal) -> None:
    """Replace the journal atomically and durably (temp file, fsync, rename, fsync dir)."""
    from jamey_engine.fsutil import write_durably

    path = journal_path(memory_dir)
    tmp = memory_dir / f".{JOURNAL_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    write_durably(path, json.dumps(asdict(journal), indent=1, sort_keys=True).encode(), tmp)


def read_journal(memory_dir: Path) -> Journal | None:
    """The journal of a restore in flight (or killed), or None. Raises StorageCorrupt."""
    path = journal_path(memory_dir)
    try:
        data = json.loads(path.read_bytes())
        return Journal(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as err:
        raise StorageCorrupt(f"{path} is unreadable ({err}); a restore was interrupted", str(path)) from None


def remove_journal(memory_dir: Path) -> None:
    """Remove the journal (the restore is finished one way or the other), durably."""
    journal_path(memory_dir).unlink(missing_ok=True)
    fsync_path(memory_dir)


def past_point_of_no_return(memory_dir: Path) -> bool:
    """True while a live process's restore is committing or finishing after its commit: a cancel
    must wait for it to end rather than kill it."""
    try:
        journal = read_journal(memory_dir)
    except StorageCorrupt:
        return False
    if journal is None or journal.phase not in ("committing", "committed"):
        return False
    try:
        os.kill(journal.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def restore_lock(data_dir: Path, *, wait: bool = False) -> Iterator[bool]:
    """Hold the data dir's restore lock; yields False (holding nothing) when another process has
    it and ``wait`` is false."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT back (delivered when this ends) in the main thread: past the point
    of no return a cancel waits for the end. Elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def committed(db: Database, journal: Journal) -> bool:
    """Whether the restore's transaction committed (its marker row exists)."""
    ops = Operation.__table__
    with db.connect() as conn:
        found = conn.execute(
            sa.select(sa.func.count()).where(ops.c.kind == "restore", ops.c.detail == journal.marker)
        ).scalar_one()
    return bool(found)


def roll_back(store: MemoryStore, journal: Journal, memory_dir: Path) -> None:
    """CURRENT names the previous generations again; the staged ones, the copy and the journal go."""
    from jamey_engine.memory.portable import switch_generations

    gens = store.generations
    now = gens.read()
    if any(now.get(layer) == name for layer, name in journal.staged.items()):
        switch_generations(store, {**now, **journal.previous}, discard_log=False)
    for layer, name in journal.staged.items():
        if journal.previous.get(layer) != name:
            gens.remove_generation(layer, name)
    remove_tree(Path(journal.way_back))
    remove_journal(memory_dir)


def roll_forward(store: MemoryStore, journal: Journal, memory_dir: Path) -> None:
    """CURRENT names the staged generations; the previous ones, the copy and the journal go."""
    from jamey_engine.memory.portable import switch_generations

    gens = store.generations
    now = gens.read()
    if any(now.get(layer) != name for layer, name in journal.staged.items()):
        switch_generations(store, {**now, **journal.staged}, discard_log=True)
    for layer, name in journal.previous.items():
        if journal.staged.get(layer) != name:
            gens.remove_generation(layer, name)
    remove_tree(Path(journal.way_back))
    remove_journal(memory_dir)


def leftovers(data_dir: Path) -> list[Path]:
    """Staging and way-back directories of restores (a live one's too: hold the lock to remove)."""
    from jamey_engine.vault.catalog import RESTORE_PREVIOUS_PREFIX, RESTORE_STAGING_PREFIX

    try:
        return [
            path
            for path in data_dir.iterdir()
            if path.name.startswith((RESTORE_STAGING_PREFIX, RESTORE_PREVIOUS_PREFIX))
        ]
    except FileNotFoundError:
        return []


def needs_recovery(memory_dir: Path, data_dir: Path) -> bool:
    """Whether a restore was killed here (a journal or a staging directory is left): a stat and
    a listing of the data dir."""
    return journal_path(memory_dir).exists() or bool(leftovers(data_dir))


def recover(store: MemoryStore, db: Database, data_dir: Path) -> str | None:
    """Finish a restore that was killed: roll it forward when its commit happened, else back,
    and remove its staging.

    Returns "forward", "back", or None (no journal, or a live restore holds the lock). Raises
    StorageCorrupt for an unreadable journal.
    """
    memory_dir = store.generations.root
    if not needs_recovery(memory_dir, data_dir):
        return None
    with restore_lock(data_dir) as held:
        if not held:
            return None
        outcome = recover_locked(store, db, memory_dir)
        for path in leftovers(data_dir):
            remove_tree(path)
        return outcome


def recover_locked(store: MemoryStore, db: Database, memory_dir: Path) -> str | None:
    """:func:`recover` for a caller that holds the restore lock."""
    journal = read_journal(memory_dir)
    if journal is None:
        return None
    if committed(db, journal):
        roll_forward(store, journal, memory_dir)
        log.warning("an interrupted restore of %s was rolled forward (it had committed)", journal.backup_id)
        return "forward"
    roll_back(store, journal, memory_dir)
    log.warning("an interrupted restore of %s was rolled back (it had not committed)", journal.backup_id)
    return "back"


def as_dict(journal: Journal) -> dict[str, Any]:
    """The journal as JSON-friendly data (for doctor and the tests)."""
    return asdict(journal)
