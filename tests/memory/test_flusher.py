"""The flusher process and the per-writer log streams, with real processes: two writers
appending at once, writers and flushers killed at every step, the lease, and the bound on
when another process sees a write (JAMEY_FLUSH_INTERVAL plus one commit)."""

from __future__ import annotations

import atexit
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from helpers import memories_on_disk, wait_until

from jamey_engine.cli.serve import supervise_flusher
from jamey_engine.engine import Engine
from jamey_engine.fsutil import process_alive
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.flusher import Flusher, FlusherLease, holder
from jamey_engine.memory.wal import FLUSH_WANTED, LayerLog, parse_segment

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
POINTS = ("sealed", "marked", "committed", "deleting")


def _child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), **extra}


def _flusher(data_dir: Path, interval: float) -> subprocess.Popen[bytes]:
    """A real ``jamey flusher`` on ``data_dir``."""
    env = _child_env(JAMEY_DATA_DIR=str(data_dir), JAMEY_FLUSH_INTERVAL=str(interval))
    env.pop("API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "jamey_engine", "flusher"], env=env, stdout=subprocess.DEVNULL
    )


class _Writer:
    """A child process storing from many threads (memory.workers.write_until_killed) in
    process mode: it never flushes; its acknowledged ids are collected as it prints them."""

    def __init__(self, root: Path, threads: int) -> None:
        code = (
            "from memory.workers import write_until_killed; "
            f"write_until_killed({str(root)!r}, {threads}, 3600, 'process')"
        )
        self.child = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, env=_child_env(), text=True
        )
        assert self.child.stdout is not None
        assert self.child.stdout.readline().strip() == "ready"
        self.acknowledged: list[str] = []
        self.batches: dict[str, list[str]] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.child.stdout is not None
        for line in self.child.stdout:
            if not line.endswith("\n"):
                break  # the kill cut the last line: that write's acknowledgement never completed
            words = line.split()
            if words[0] == "one":
                self.acknowledged.append(words[1])
            elif words[0] == "batch" and len(words) == 5:
                self.batches[words[1]] = words[2:]

    def count(self) -> int:
        return len(self.acknowledged) + len(self.batches)

    def kill(self) -> None:
        self.child.send_signal(signal.SIGKILL)
        self.child.wait(timeout=30)
        self._reader.join(timeout=30)


def _check_exactly_once(root: Path, writers: list[_Writer]) -> int:
    store = MemoryStore(root)
    try:
        every = memories_on_disk(store, "episodic")
    finally:
        store.close()
    copies = Counter(memory.id for memory in every)
    assert max(copies.values()) == 1, "a flush or a replay indexed a memory twice"
    acknowledged = [i for w in writers for i in w.acknowledged] + [
        i for w in writers for ids in w.batches.values() for i in ids
    ]
    missing = [i for i in acknowledged if copies[i] != 1]
    assert not missing, f"{len(missing)} acknowledged memories are missing"
    parts = Counter(m.content.split()[0][5:] for m in every if m.content.startswith("batch"))
    assert set(parts.values()) <= {3}, "a batch is half there"
    return len(acknowledged)


def test_two_writers_append_at_once_each_to_its_own_stream(memory_root: Path) -> None:
    """Two processes group-commit at the same time: each has its own segment files, and
    neither waits for a lock the other holds (there is no shared append lock any more)."""
    writers = [_Writer(memory_root, 8) for _ in range(2)]
    try:
        wait_until(lambda: all(w.count() > 50 for w in writers), 60, "both writers acknowledging")
        streams = {
            parsed[1]
            for name in os.listdir(memory_root / "episodic")
            if (parsed := parse_segment(name)) is not None
        }
        assert len(streams) == 2, f"one stream per writer process, found {streams}"
        assert not (memory_root / "episodic" / ".wal.lock").exists(), "no shared append lock"
    finally:
        for writer in writers:
            writer.kill()
    assert _check_exactly_once(memory_root, writers) > 100


def test_writers_and_flushers_killed_at_every_step_leave_every_acknowledged_memory_once(
    memory_root: Path,
) -> None:
    """SIGKILL of a flush after it sealed the epoch, after its marker, after its commit and
    halfway through removing the segments, then of real ``jamey flusher`` processes at random
    moments, all while two writer processes append; then both writers are killed mid-append."""
    rng = random.Random(31)
    writers = [_Writer(memory_root, 8) for _ in range(2)]
    try:
        for point in POINTS + POINTS:
            before = sum(w.count() for w in writers)
            wait_until(lambda b=before: sum(w.count() for w in writers) > b + 10, 60, "new writes")
            code = f"from memory.workers import flush_and_die_at; flush_and_die_at({str(memory_root)!r}, {point!r})"
            died = subprocess.run(
                [sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True, timeout=120
            )
            assert died.returncode == -signal.SIGKILL, (point, died.stderr[-2000:])
        for _ in range(6):
            flusher = _flusher(memory_root.parent, 0.05)
            wait_until(lambda f=flusher: holder(memory_root) == f.pid, 60, "the flusher holding the lease")
            threading.Event().wait(rng.uniform(0.05, 0.6))
            flusher.send_signal(signal.SIGKILL)
            flusher.wait(timeout=30)
    finally:
        for writer in writers:
            writer.kill()
    assert all(w.count() > 20 for w in writers)
    assert _check_exactly_once(memory_root, writers) > 200


def test_a_serving_process_never_flushes_it_only_asks_the_flusher(memory_root: Path) -> None:
    # Flush threads of stores other tests in this process left open are not this store's.
    others = {t for t in threading.enumerate() if t.name == "jamey-memory-flush"}
    serving = MemoryStore(memory_root, flush_interval=0.01, flush_docs=5, flusher="process")
    flusher_store = MemoryStore(memory_root, flush_interval=3600)
    try:
        ids = serving.store_batch("working", [f"asks for a flush {i}" for i in range(6)])
        serving.store("working", "one more")
        assert serving.count("working") == 7, "its own writes are visible to it at once"
        assert serving.sizes().layers["working"].documents == 0, "sizes do not flush either"
        assert not [t for t in threading.enumerate() if t.name == "jamey-memory-flush" and t not in others]
        wanted = memory_root / "working" / FLUSH_WANTED
        assert wanted.exists(), "a full tier asks the flusher to come early"
        assert serving.index("working").searcher().num_docs == 0
        flusher = Flusher(flusher_store, interval=3600)
        assert flusher.due("working", 0.0), "due at once when asked, whatever the interval"
        flusher.flush_due()
        assert not wanted.exists()
        assert serving.index("working").searcher().num_docs == 7
        assert serving.count("working") == 7 and serving.get("working", ids[0])
        assert serving.logs.flushes == 0
        flusher.flush_due()
        tier = serving.logs._tiers["working"]
        serving.store("working", "written after the flush, no read in between")
        flusher_store.flush_layer("working")
        serving.store("working", "a write alone drops what the flusher moved")
        # The writer thread forgets after it answered: poll (a write, never a read, triggers it).
        wait_until(lambda: list(tier.epochs) == [tier.flushed + 1], 30, "a writing process's tier dropping")
        assert tier.pending() == 1, "a writing process's tier stays bounded"
    finally:
        serving.close()
        flusher_store.close()
    assert MemoryStore(memory_root).count("working") == 9


def test_another_process_sees_a_write_within_the_flush_interval_plus_one_commit(memory_root: Path) -> None:
    """The serving process (process mode) never flushes and the reader never flushes: only the
    flusher process makes the write visible, within JAMEY_FLUSH_INTERVAL plus one commit. The
    deadline is derived from the setting and the lock timeout (a commit waits at most that long
    for the index writer); no stopwatch figure is asserted."""
    interval = 0.5
    lock_timeout = 10.0
    reader = MemoryStore(memory_root, flush_interval=3600)
    assert reader.search("working", "elsewhere") == []
    flusher = _flusher(memory_root.parent, interval)
    writer = None
    try:
        wait_until(lambda: holder(memory_root) == flusher.pid, 60, "the flusher holding the lease")
        code = (
            "from memory.workers import store_and_wait; "
            f"store_and_wait({str(memory_root)!r}, 'seen elsewhere', 3600, 120, 'process')"
        )
        writer = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, env=_child_env(), text=True
        )
        assert writer.stdout is not None
        memory_id, _ = writer.stdout.readline().split()
        found = wait_until(
            lambda: reader.search("working", "elsewhere"),
            interval + lock_timeout,
            "the write in another process",
        )
        assert [m.id for m in found] == [memory_id]
        assert writer.poll() is None and reader.logs.flushes == 0
    finally:
        for child in (writer, flusher):
            if child is not None:
                child.kill()
                child.wait()
        reader.close()


def test_one_flusher_holds_the_lease_and_another_takes_over_when_it_dies(memory_root: Path) -> None:
    first = _flusher(memory_root.parent, 0.1)
    second = None
    try:
        wait_until(lambda: holder(memory_root) == first.pid, 60, "the first flusher holding the lease")
        second = _flusher(memory_root.parent, 0.1)
        assert not FlusherLease(memory_root).try_acquire(), "the lease is held"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        wait_until(lambda: holder(memory_root) == second.pid, 60, "the second flusher taking over")
        writer = MemoryStore(memory_root, flusher="process")
        try:
            memory = writer.store("semantic", "flushed by the second flusher")
            other = MemoryStore(memory_root, flush_interval=3600)
            try:
                wait_until(lambda: other.search("semantic", "second"), 30, "the flush by the new holder")
                assert other.get("semantic", memory.id)
            finally:
                other.close()
        finally:
            writer.close()
    finally:
        for child in (first, second):
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)
                assert child.wait(timeout=60) == 0, "a flusher stops cleanly on SIGTERM"


@pytest.mark.parametrize("writers", [1, 2])
def test_a_flush_merges_the_streams_in_the_order_records_were_accepted(
    memory_root: Path, writers: int
) -> None:
    stores = [MemoryStore(memory_root, flush_interval=3600, flusher="process") for _ in range(writers)]
    try:
        ids = []
        for i in range(12):
            ids.append(stores[i % writers].store("long_term", f"ordered {i}").id)
        deleted = ids[3]
        stores[-1].logs.log_writer("long_term").delete(deleted, False).result()
        wal = LayerLog(memory_root / "long_term", "long_term", 5.0)
        records = wal.read(wal.epoch())
        stamps = [r.stamp for r in records]
        assert stamps == sorted(stamps), "merged by acceptance time"
        assert [r.adds[0][1] for r in records if r.adds] == [f"ordered {i}" for i in range(12)]
        assert records[-1].delete == deleted
        flusher_store = MemoryStore(memory_root, flush_interval=3600)
        try:
            flusher_store.flush_layer("long_term")
            assert flusher_store.count("long_term") == 11
        finally:
            flusher_store.close()
    finally:
        for store in stores:
            store.close()


def test_jamey_serve_runs_the_flusher_and_restarts_it_when_it_dies(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAMEY_FLUSHER", "auto")
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(TESTS)]))
    assert engine.settings.flusher == "auto"
    supervisor = supervise_flusher(engine)
    assert supervisor is not None
    try:
        atexit.unregister(supervisor.stop)
        assert engine.settings.flusher == "process" and os.environ["JAMEY_FLUSHER"] == "process"
        assert engine.memory.flusher == "process", "the serving process never flushes"
        memory_dir = engine.settings.memory_dir
        first = wait_until(
            lambda: supervisor.pid if holder(memory_dir) == supervisor.pid else 0, 60, "the flusher"
        )
        environ = Path(f"/proc/{first}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith((b"JAMEY_KEY_PEPPER=", b"JAMEY_DATABASE_URL="))]
        os.kill(first, signal.SIGKILL)
        second = wait_until(
            lambda: supervisor.pid if supervisor.pid != first and holder(memory_dir) == supervisor.pid else 0,
            60,
            "a restarted flusher holding the lease",
        )
        assert supervisor.restarts == 1
        memory = engine.memory.store("working", "flushed by the restarted flusher")
        other = MemoryStore(memory_dir, flush_interval=3600)
        try:
            wait_until(lambda: other.search("working", "restarted"), 60, "the restarted flusher's flush")
            assert other.get("working", memory.id)
        finally:
            other.close()
    finally:
        supervisor.stop()
    assert not process_alive(second), "stopping jamey serve stops its flusher"
    assert supervisor.restarts == 1, "a flusher asked to stop is not restarted"


def test_inline_keeps_the_flush_in_the_serving_process(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.settings = engine.settings.with_overrides(flusher="inline")
    monkeypatch.delenv("JAMEY_FLUSHER", raising=False)
    assert supervise_flusher(engine) is None
    assert engine.memory.flusher == "inline" and "JAMEY_FLUSHER" not in os.environ
