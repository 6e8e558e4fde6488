"""Generations of layer indexes, the atomic CURRENT pointer, and the switch lock.

On disk, under ``memory/``::

    CURRENT            {"short_term": "g20260101T000000-1a2b3c4d", ...}  (atomically replaced)
    CURRENT.lock       flock: SHARED while writing into a generation, EXCLUSIVE to switch
    CURRENT.turnstile  flock taken briefly before CURRENT.lock, so a waiting switch is not
                       starved by a stream of writers
    BUILDING.lock      flock: SHARED by every process building a new generation (prune,
                       restore) until it is switched in or removed; a stray sweep takes it
                       EXCLUSIVE without waiting, so it only runs when nobody builds
    <layer>/<generation>/   one tantivy index per layer generation

Prune (compaction) and restore build a new generation beside the current one, then switch
the pointer under the exclusive lock. Writers hold the shared lock while they resolve the
pointer and commit, so no commit lands in a generation after it was replaced. Every process
checks the pointer (a stat) on each operation and reopens a layer whose generation changed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jamey_engine.errors import Busy, StorageCorrupt
from jamey_engine.fsutil import write_durably
from jamey_engine.memory.layers import LAYERS
from jamey_engine.memory.schema import create_index, live_documents, read_meta
from jamey_engine.memory.wal import is_log_file

POINTER = "CURRENT"
LOCK = "CURRENT.lock"
TURNSTILE = "CURRENT.turnstile"
BUILDING = "BUILDING.lock"  # SHARED while a generation is built; a stray sweep needs it EXCLUSIVE
# A restore in flight (or killed) names both sides here (jamey_engine/vault/restore_journal.py);
# until the next start rolls it forward or back, no sweep may take either side's generations.
RESTORE_JOURNAL = "RESTORE.journal"

StatKey = tuple[int, int, int]


def dir_size(path: Path) -> int:
    """Bytes of the regular files directly inside ``path`` (0 if it does not exist)."""
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # removed by a concurrent merge
    except FileNotFoundError:
        return 0
    return total


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target``, copying instead across filesystems."""
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, target)


def new_generation_name() -> str:
    """A unique, sortable generation directory name."""
    return f"g{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


class Generations:
    """The pointer file and the switch lock of one ``memory/`` directory."""

    def __init__(self, root: Path, lock_timeout: float) -> None:
        self.root = root
        self.lock_timeout = lock_timeout
        self.pointer_path = root / POINTER
        # (fingerprint, mapping) in one attribute, so threads never see half an update.
        self._cache: tuple[StatKey | None, dict[str, str]] = (None, {})

    # -- the pointer -------------------------------------------------------------------
    def stat_key(self) -> StatKey | None:
        """A cheap fingerprint of CURRENT (inode, mtime, size); None if it does not exist."""
        try:
            st = os.stat(self.pointer_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> dict[str, str]:
        """The current {layer: generation} mapping ({} before the first initialisation)."""
        key = self.stat_key()
        if key is None:
            return {}
        cached_key, cached = self._cache
        if key == cached_key:
            return dict(cached)
        try:
            data = json.loads(self.pointer_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise StorageCorrupt(
                f"{self.pointer_path} is unreadable ({err})", str(self.pointer_path)
            ) from None
        if not isinstance(data, dict) or not all(isinstance(v, str) and v for v in data.values()):
            raise StorageCorrupt(
                f"{self.pointer_path} does not map layers to generations", str(self.pointer_path)
            )
        mapping = {str(k): str(v) for k, v in data.items()}
        self._cache = (key, mapping)
        return dict(mapping)

    def write(self, mapping: dict[str, str]) -> None:
        """Replace CURRENT atomically (temp file, fsync, rename, fsync dir). Hold the exclusive lock."""
        tmp = self.root / f".{POINTER}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        write_durably(self.pointer_path, json.dumps(mapping, indent=1, sort_keys=True).encode(), tmp)

    def layer_path(self, layer: str, generation: str) -> Path:
        """The index directory of ``generation`` of ``layer``."""
        return self.root / layer / generation

    def new_generation(self, layer: str) -> tuple[str, Path]:
        """Reserve a fresh, empty generation directory for ``layer``."""
        name = new_generation_name()
        path = self.layer_path(layer, name)
        path.mkdir(parents=True)
        return name, path

    def remove_generation(self, layer: str, generation: str) -> None:
        """Delete a replaced generation directory (open files stay readable until closed)."""
        shutil.rmtree(self.layer_path(layer, generation), ignore_errors=True)

    def pinned(self, layer: str) -> set[str]:
        """Generations of ``layer`` a restore journal names (either side of a restore in flight)."""
        try:
            data = json.loads((self.root / RESTORE_JOURNAL).read_bytes())
            return {str(data[side][layer]) for side in ("previous", "staged") if layer in data[side]}
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, KeyError, TypeError):
            return (
                {child.name for child in (self.root / layer).iterdir()}
                if (self.root / layer).is_dir()
                else set()
            )

    def sweep(self, layer: str, min_age: float = 3600.0) -> list[str]:
        """Remove leftovers of ``layer`` older than ``min_age`` seconds that the pointer does not name.

        Leftovers come from a crash mid-prune, or from a merge thread in another process still
        writing into a replaced generation while it was removed. Younger directories may be a
        compaction in progress elsewhere, so they stay. Returns the names removed.
        """
        current = self.read().get(layer)
        pinned = self.pinned(layer)
        removed = []
        cutoff = time.time() - min_age
        try:
            children = list((self.root / layer).iterdir())
        except FileNotFoundError:
            return []
        for child in children:
            if is_log_file(child.name):
                continue  # the layer's write-ahead log lives beside its generations
            try:
                stale = child.name != current and child.name not in pinned and child.stat().st_mtime < cutoff
            except FileNotFoundError:
                continue
            if stale:
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child.name)
        return removed

    @contextmanager
    def building(self) -> Iterator[None]:
        """Hold the build lock SHARED while building a generation until it is switched in or removed.

        Take it before the switch lock. A process killed meanwhile frees it (the kernel does),
        so :meth:`sweep_strays` can tell a dead build's leftovers from a build in progress.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / BUILDING, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # a sweep holds it EXCLUSIVE only for an instant
            yield
        finally:
            os.close(fd)

    def sweep_strays(self, layer: str) -> list[str]:
        """Remove every generation directory of ``layer`` that CURRENT does not name, and pointer
        temp files, when no process is building a generation (else remove nothing); files beside
        the generations (the write-ahead log, its locks) are never touched. Returns the names removed.

        Leftovers of a build killed before its switch, or of a switch killed before it removed
        the old generation, are safe to remove then: nobody can be writing into them.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / BUILDING, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []
            with self.exclusive("sweep of leftover generations"):
                current = self.read().get(layer)
                pinned = self.pinned(layer)
                removed = []
                for child in sorted(self.root.glob(f".{POINTER}.*.tmp")):
                    child.unlink(missing_ok=True)
                try:
                    children = list((self.root / layer).iterdir())
                except FileNotFoundError:
                    return []
                for child in children:
                    # Only generation directories: the layer's write-ahead log and its locks
                    # are files beside them, and must stay.
                    if (
                        current is not None
                        and child.name != current
                        and child.name not in pinned
                        and child.is_dir()
                    ):
                        shutil.rmtree(child, ignore_errors=True)
                        removed.append(child.name)
                return removed
        finally:
            os.close(fd)

    # -- initialisation ----------------------------------------------------------------
    def ensure(self) -> dict[str, str]:
        """Return the pointer, first creating an empty generation for any layer that has none.

        A layer directory that holds documents but is not named by CURRENT is damage, not a
        new layer: StorageCorrupt names it rather than hiding its data behind an empty index.
        """
        current = self.read()
        if all(layer in current for layer in LAYERS):
            return current
        self.root.mkdir(parents=True, exist_ok=True)
        with self.exclusive():
            current = self.read()
            missing = [layer for layer in LAYERS if layer not in current]
            for layer in missing:
                self._check_unreferenced(layer)
            for layer in missing:
                name, path = self.new_generation(layer)
                create_index(path)
                current[layer] = name
            if missing:
                self.write(current)
            return current

    def _check_unreferenced(self, layer: str) -> None:
        layer_dir = self.root / layer
        if not layer_dir.is_dir():
            return
        for child in layer_dir.iterdir():
            if is_log_file(child.name) or not child.is_dir():
                continue
            try:
                documents = live_documents(read_meta(child))
            except (OSError, ValueError, KeyError, TypeError):
                documents = 0 if not any(child.iterdir()) else -1
            if documents != 0:
                raise StorageCorrupt(
                    f"layer {layer!r}: {child} holds index data but {self.pointer_path} does not name "
                    "a generation for this layer; restore the pointer or a backup",
                    str(child),
                )

    # -- locks -------------------------------------------------------------------------
    def _flock(self, name: str, mode: int, deadline: float, what: str) -> int:
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise Busy(
                        f"{what}: the memory store at {self.root} is being switched to a new generation "
                        "by another process (prune or restore); try again"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    @contextmanager
    def shared(self, what: str = "memory store") -> Iterator[None]:
        """Hold the switch lock SHARED (writers): no generation switch happens meanwhile."""
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        gate = self._flock(TURNSTILE, fcntl.LOCK_EX, deadline, what)
        try:
            fd = self._flock(LOCK, fcntl.LOCK_SH, deadline, what)
        finally:
            os.close(gate)
        try:
            yield
        finally:
            os.close(fd)

    @contextmanager
    def exclusive(self, what: str = "memory store", timeout: float | None = None) -> Iterator[None]:
        """Hold the switch lock EXCLUSIVE: no writer is between resolving and committing."""
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + (self.lock_timeout if timeout is None else timeout)
        gate = self._flock(TURNSTILE, fcntl.LOCK_EX, deadline, what)
        try:
            fd = self._flock(LOCK, fcntl.LOCK_EX, deadline, what)
            try:
                yield
            finally:
                os.close(fd)
        finally:
            os.close(gate)
