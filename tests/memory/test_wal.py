"""The write-ahead log and the in-memory tier: crashes, torn tails, damage, visibility,
interplay with prune, snapshots, restores and deletes, and a full disk."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import memories_on_disk, wait_until

from jamey_engine.errors import LogCorrupt, NotFound, Unavailable
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.wal import FLUSHING, HEAD, LayerLog, encode_add, scan, segment_name

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
OLD = "2020-01-01T00:00:00Z"


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}


def _unflushed(root: Path, **kwargs: Any) -> MemoryStore:
    """A store whose background flush never runs during a test."""
    return MemoryStore(root, lock_timeout=5.0, flush_interval=3600, **kwargs)


def _segments(root: Path, layer: str) -> list[Path]:
    return sorted((root / layer).glob("wal-*.log"))


# -- the log itself ------------------------------------------------------------------------
def test_a_store_returns_with_its_record_in_the_log_and_visible_in_this_process(memory_root: Path) -> None:
    store = _unflushed(memory_root)
    try:
        memory = store.store("working", "read your writes")
        [segment] = _segments(memory_root, "working")
        assert segment.stat().st_size > HEAD
        assert [m.id for m in store.search("working", "writes")] == [memory.id]
        assert [m.id for m in store.search("working", "*", order="newest")] == [memory.id]
        assert store.get("working", memory.id).content == "read your writes"
        assert store.count("working") == 1
        assert store.index("working").searcher().num_docs == 0  # not in the on-disk index yet
    finally:
        store.close()
    reopened = MemoryStore(memory_root)
    assert reopened.index("working").searcher().num_docs == 1  # flushed at close
    assert not any(s.stat().st_size for s in _segments(memory_root, "working"))
    reopened.close()


def test_search_merges_both_tiers_by_score_and_by_time(memory_root: Path) -> None:
    store = _unflushed(memory_root)
    try:
        store.store_batch(
            "working", [(f"apple {'pear ' * i}", f"2024-01-0{i + 1}T00:00:00Z") for i in range(4)]
        )
        store.flush()
        store.store_batch(
            "working", [(f"apple {'plum ' * i}", f"2024-02-0{i + 1}T00:00:00Z") for i in range(4)]
        )
        hits = store.search("working", "apple", limit=8)
        assert len(hits) == 8 and len({m.id for m in hits}) == 8
        scores = [m.score or 0.0 for m in hits]
        assert scores == sorted(scores, reverse=True)
        newest = store.search("working", "apple", order="newest", limit=5)
        assert [m.timestamp.month for m in newest] == [2, 2, 2, 2, 1]
        stamps = [m.timestamp for m in newest]
        assert stamps == sorted(stamps, reverse=True)
        assert (
            len(store.search("working", "apple", since="2024-01-03T00:00:00Z", until="2024-02-02T00:00:00Z"))
            == 3
        )
    finally:
        store.close()


def _template(tmp_path: Path) -> Path:
    root = tmp_path / "template" / "memory"
    store = MemoryStore(root)
    store.sizes()
    store.close()
    return root


def _records(count: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        memory_id = f"00000000-0000-4000-8000-{i:012d}"
        out.append(
            (
                memory_id,
                encode_add([(memory_id, f"logged memory {i}", datetime(2024, 5, 1, 0, 0, i, tzinfo=UTC))]),
            )
        )
    return out


def test_a_log_cut_at_every_byte_of_its_last_record_opens_with_that_record_whole_or_gone(
    tmp_path: Path,
) -> None:
    template = _template(tmp_path)
    records = _records(3)
    whole = b"".join(data for _, data in records)
    last = len(records[-1][1])
    start = len(whole) - last
    for cut in range(last + 1):
        root = tmp_path / f"cut{cut}" / "memory"
        shutil.copytree(template, root)
        (root / "working" / segment_name(1)).write_bytes(whole[: start + cut])
        store = MemoryStore(root)
        try:
            for memory_id, _ in records[:-1]:
                store.get("working", memory_id)
            if cut == last:
                assert store.get("working", records[-1][0]).content == "logged memory 2"
                assert store.count("working") == 3
            else:
                with pytest.raises(NotFound):
                    store.get("working", records[-1][0])
                assert store.count("working") == 2
            if cut in (0, HEAD - 1, HEAD, last - 1, last):
                store.store("working", "appended after the cut")  # the log takes appends again
                assert store.count("working") == (4 if cut == last else 3)
        finally:
            store.close()


def test_a_torn_tail_left_by_a_dead_appender_is_ignored_and_others_keep_appending(memory_root: Path) -> None:
    store = _unflushed(memory_root)
    kept = store.store("working", "before the torn write")
    wal = store.layer_log("working")
    # Another writer (its own stream) died halfway through its second append.
    whole_id = "00000000-0000-4000-8000-000000000008"
    whole = encode_add([(whole_id, "whole record of the dead writer", datetime.now(UTC))])
    torn = encode_add([("00000000-0000-4000-8000-000000000009", "torn", datetime.now(UTC))])
    dead = memory_root / "working" / segment_name(wal.epoch(), "999999-deadbeef")
    dead.write_bytes(whole + torn[: len(torn) // 2])
    after = store.store("working", "after the torn write")
    records, end = scan(dead.read_bytes(), 0, "working", str(dead))
    assert len(records) == 1 and end == len(whole)
    store.close()
    reopened = MemoryStore(memory_root)
    assert {m.id for m in reopened.search("working", "*")} == {kept.id, after.id, whole_id}
    assert not dead.exists(), "the flush removed the dead writer's segment with its torn tail"
    reopened.close()


@pytest.mark.parametrize("where", ["header", "payload"])
def test_a_flipped_byte_mid_log_is_a_clear_error_naming_layer_file_and_offset(
    tmp_path: Path, where: str
) -> None:
    template = _template(tmp_path)
    records = _records(3)
    data = bytearray(b"".join(d for _, d in records))
    first = len(records[0][1])
    position = first + (5 if where == "header" else HEAD + 3)  # inside the second record
    data[position] ^= 0x20
    segment = template / "working" / segment_name(1)
    segment.write_bytes(bytes(data))
    store = MemoryStore(template)
    try:
        for action in (
            lambda: store.search("working", "*"),
            lambda: store.get("working", records[0][0]),
            lambda: store.store("working", "refused while the log is damaged"),
        ):
            with pytest.raises(LogCorrupt) as caught:
                action()
            message = str(caught.value)
            assert "layer 'working'" in message and f"byte {first}" in message and str(segment) in message
            assert "\n" not in message
        assert store.count("episodic") == 0  # the other layers serve
    finally:
        store.close()
    assert segment.read_bytes() == bytes(data)  # nothing was cut or skipped


def _scrape(engine: Any, name: str, layer: str) -> float | None:
    from jamey_engine.observability.metrics import build_registry

    return build_registry(engine).get_sample_value(name, {"layer": layer})


def test_a_damaged_full_length_last_record_is_set_aside_logged_and_counted(
    engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Damage at rest (a whole record, wrong checksum) is not a torn tail: it must not vanish."""
    root = engine.settings.memory_dir
    engine.memory.sizes()
    records = _records(3)
    data = bytearray(b"".join(d for _, d in records))
    last = len(data) - len(records[-1][1])
    data[last + HEAD + 10] ^= 0x01  # inside the last record's payload: its length is intact
    segment = root / "working" / segment_name(1, "4242-0badc0de")
    segment.write_bytes(bytes(data))
    assert _scrape(engine, "memory_log_damaged_records_total", "working") == 0
    store = MemoryStore(root)
    try:
        with caplog.at_level("ERROR", logger="jamey_engine.memory"):
            assert store.get("working", records[0][0]) and store.get("working", records[1][0])
        with pytest.raises(NotFound):
            store.get("working", records[2][0])
        kept = root / "working" / f"{segment.name}.damaged-{last}"
        assert kept.read_bytes() == bytes(data[last:]), "the damaged record's bytes are kept for inspection"
        [line] = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
        assert f"byte {last}" in line and segment.name in line and kept.name in line
        assert "logged memory" not in line, "no memory content in the log line"
        store.store("working", "the log goes on after the damaged record")
        store.flush()
        assert store.count("working") == 3
    finally:
        store.close()
    assert _scrape(engine, "memory_log_damaged_records_total", "working") == 1
    assert _scrape(engine, "memory_log_damaged_records_total", "episodic") == 0
    assert kept.exists() and not segment.exists()


@pytest.mark.parametrize("tail", ["short", "zero-filled"])
def test_a_torn_last_record_is_cut_silently_with_nothing_set_aside(
    engine: Any, caplog: pytest.LogCaptureFixture, tail: str
) -> None:
    root = engine.settings.memory_dir
    engine.memory.sizes()
    records = _records(3)
    data = bytearray(b"".join(d for _, d in records))
    last = len(data) - len(records[-1][1])
    if tail == "short":
        data = data[:-5]  # the crash cut the last write short
    else:
        data[last + HEAD :] = bytes(len(data) - last - HEAD)  # size grew, the data never landed
    segment = root / "working" / segment_name(1, "4242-0badc0de")
    segment.write_bytes(bytes(data))
    store = MemoryStore(root)
    try:
        with caplog.at_level("ERROR", logger="jamey_engine.memory"):
            assert store.count("working") == 2
        with pytest.raises(NotFound):
            store.get("working", records[2][0])
    finally:
        store.close()
    assert not list((root / "working").glob("*.damaged-*"))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert _scrape(engine, "memory_log_damaged_records_total", "working") == 0


# -- crashes -------------------------------------------------------------------------------
def test_sigkill_under_32_writers_loses_no_acknowledged_memory_and_leaves_no_half_batch(
    memory_root: Path,
) -> None:
    rng = random.Random(20)
    acknowledged: list[str] = []
    batches: dict[str, list[str]] = {}
    for _ in range(20):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from memory.workers import write_until_killed; write_until_killed({str(memory_root)!r})",
            ],
            stdout=subprocess.PIPE,
            env=_child_env(),
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        for line in out.split("\n")[:-1]:  # whole lines only: the kill may cut the last one
            words = line.split()
            if words[0] == "one":
                acknowledged.append(words[1])
            else:
                assert words[0] == "batch" and len(words) == 5
                batches[words[1]] = words[2:]
    assert acknowledged and batches
    store = MemoryStore(memory_root)
    try:
        every = memories_on_disk(store, "episodic")
        copies = Counter(memory.id for memory in every)
        for memory_id in acknowledged + [i for ids in batches.values() for i in ids]:
            assert copies[memory_id] == 1, f"acknowledged {memory_id} is there {copies[memory_id]} times"
        assert max(copies.values()) == 1, "a replay indexed a memory twice"
        parts = Counter(m.content.split()[0][5:] for m in every if m.content.startswith("batch"))
        assert set(parts.values()) <= {3}, "a batch is half there"
        assert set(batches) <= set(parts)
    finally:
        store.close()


def test_a_flush_killed_after_its_commit_is_replayed_once_on_the_next_open(memory_root: Path) -> None:
    """The commit reached the index but the log was not cut: the next flush must not add again."""
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from memory.workers import flush_and_die_after_commit; flush_and_die_after_commit({str(memory_root)!r}, 25)",
        ],
        capture_output=True,
        env=_child_env(),
        text=True,
        timeout=120,
    )
    assert child.returncode == 9, child.stderr
    acknowledged = child.stdout.split()
    assert len(acknowledged) == 25
    assert (memory_root / "working" / FLUSHING).exists(), "the dead flush left its marker"
    assert _segments(memory_root, "working"), "and its records in the log"
    dirty: list[bool] = []
    real_begin = LayerLog.begin_flush

    def begin_flush(self: LayerLog, upto: int) -> bool:
        dirty.append(real_begin(self, upto))
        return dirty[-1]

    store = _unflushed(memory_root)
    LayerLog.begin_flush = begin_flush  # type: ignore[method-assign]
    try:
        copies = Counter(memory.id for memory in memories_on_disk(store, "working"))
    finally:
        LayerLog.begin_flush = real_begin  # type: ignore[method-assign]
        store.close()
    assert dirty == [True], "the replay knew the last flush had died after committing"
    assert copies == Counter(dict.fromkeys(acknowledged, 1)), "every acknowledged memory exactly once"
    assert not (memory_root / "working" / FLUSHING).exists()


# -- visibility ----------------------------------------------------------------------------
def test_another_process_sees_a_write_by_the_background_flush_while_the_writer_lives(
    memory_root: Path,
) -> None:
    """The write becomes visible elsewhere through the writer's background flush (every
    ``interval``), not its shutdown. How soon is a speed figure (bench/), not asserted here."""
    reader = _unflushed(memory_root)  # so only the writer's flush can make the write visible
    assert reader.search("working", "elsewhere") == []  # served (and replayed) before the write
    interval = 0.3
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from memory.workers import store_and_wait; store_and_wait({str(memory_root)!r}, 'seen elsewhere', {interval}, 120)",
        ],
        stdout=subprocess.PIPE,
        env=_child_env(),
        text=True,
    )
    try:
        assert child.stdout is not None
        memory_id, _ = child.stdout.readline().split()
        found = wait_until(lambda: reader.search("working", "elsewhere"), 60, "the write in another process")
        assert [m.id for m in found] == [memory_id]
        assert child.poll() is None, "seen thanks to the background flush, not a shutdown"
        assert reader.logs.flushes == 0, "the reader flushed nothing itself"
    finally:
        child.kill()
        child.wait()
        reader.close()


# -- interplay -----------------------------------------------------------------------------
def test_prune_counts_and_removes_unflushed_writes_exactly(memory_root: Path) -> None:
    store = _unflushed(memory_root)
    try:
        store.store_batch("working", [{"content": f"flushed old {i}", "timestamp": OLD} for i in range(5)])
        store.store_batch("working", [f"flushed new {i}" for i in range(4)])
        store.flush()
        store.store_batch("working", [{"content": f"unflushed old {i}", "timestamp": OLD} for i in range(3)])
        young = [store.store("working", f"unflushed new {i}").id for i in range(2)]
        [dry] = store.prune(timedelta(days=30), ["working"], dry_run=True)
        assert dry.deleted == 8
        [result] = store.prune(timedelta(days=30), ["working"])
        assert result.deleted == 8
        assert store.count("working") == 6
        for memory_id in young:
            store.get("working", memory_id)
        later = store.store("working", "after the prune")
        assert store.count("working") == 7
    finally:
        store.close()
    reopened = MemoryStore(memory_root)
    assert reopened.count("working") == 7 and reopened.get("working", later.id)
    reopened.close()


def test_a_snapshot_right_after_an_acknowledged_store_holds_it(memory_root: Path, tmp_path: Path) -> None:
    store = _unflushed(memory_root)
    other = _unflushed(memory_root)  # stands for another process writing the same layer
    try:
        store.store_batch("semantic", ["a", "b"])
        mine = store.store("semantic", "just acknowledged")
        theirs = other.store("semantic", "acknowledged elsewhere")
        counts = store.snapshot(tmp_path / "snap")
        assert counts["semantic"] == 4
        assert store.validate_layers(tmp_path / "snap")["semantic"] == 4
    finally:
        other.close()
        store.close()
    restored = MemoryStore(tmp_path / "restored")
    restored.restore_layers(tmp_path / "snap")
    assert restored.get("semantic", mine.id) and restored.get("semantic", theirs.id)
    restored.close()


def test_restore_drops_writes_logged_before_the_switch_and_keeps_later_ones(
    memory_root: Path, tmp_path: Path
) -> None:
    store = _unflushed(memory_root)
    other = _unflushed(memory_root)
    try:
        kept = store.store("working", "in the backup")
        store.snapshot(tmp_path / "snap")
        gone = store.store("working", "logged after the backup, before the restore")
        elsewhere = other.store("working", "logged by another writer before the restore")
        store.restore_layers(tmp_path / "snap")
        assert store.count("working") == 1 and store.get("working", kept.id)
        with pytest.raises(NotFound):
            store.get("working", gone.id)
        assert other.count("working") == 1
        with pytest.raises(NotFound):
            other.get("working", elsewhere.id)
        after = other.store("working", "after the restore")
        other.flush()
        assert store.count("working") == 2 and store.get("working", after.id)
    finally:
        other.close()
        store.close()
    assert MemoryStore(memory_root).count("working") == 2


def test_deletes_are_logged_and_hide_memories_in_both_tiers(memory_root: Path) -> None:
    store = _unflushed(memory_root)
    try:
        on_disk = store.store("long_term", "flushed then deleted")
        store.flush()
        in_ram = store.store("long_term", "deleted before any flush")
        survivor = store.store("long_term", "stays")
        store.delete("long_term", on_disk.id)
        store.delete("long_term", in_ram.id)
        assert store.count("long_term") == 1
        assert [m.id for m in store.search("long_term", "*")] == [survivor.id]
        for memory_id in (on_disk.id, in_ram.id):
            with pytest.raises(NotFound):
                store.get("long_term", memory_id)
            with pytest.raises(NotFound):
                store.delete("long_term", memory_id)
        store.flush()
        assert store.count("long_term") == 1 and store.index("long_term").searcher().num_docs == 1
        unflushed_delete = store.store("long_term", "deleted, crash before the flush")
        store.flush()
        store.delete("long_term", unflushed_delete.id)
    finally:
        pass  # the store is abandoned unclosed (as by a crash): the last delete is in the log only
    reopened = MemoryStore(memory_root)
    assert [m.id for m in reopened.search("long_term", "*")] == [survivor.id]
    reopened.close()


# -- a full disk ---------------------------------------------------------------------------
@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """A real small tmpfs (we run as root), unmounted after the test (as the vault tests do)."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_fails_the_store_cleanly_and_loses_nothing_acknowledged(
    tmp_path: Path, tmpfs: Callable[[Path, str], Path]
) -> None:
    data = tmpfs(tmp_path / "data", "8m")
    root = data / "memory"
    store = _unflushed(root, max_content_bytes=100_000)
    acknowledged = [store.store("working", f"before the disk filled {i}").id for i in range(20)]
    store.flush()
    acknowledged += [store.store("working", f"unflushed before the disk filled {i}").id for i in range(5)]
    stat = os.statvfs(data)
    filler = data / "filler"
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 2048))  # room for part of one record
    with pytest.raises(Unavailable, match="no space left on device") as caught:
        store.store("working", "x" * 60_000)
    assert "layer 'working'" in str(caught.value) and "\n" not in str(caught.value)
    for memory_id in acknowledged:
        store.get("working", memory_id)
    filler.unlink()
    after = store.store("working", "after the disk had room again")
    for segment in _segments(root, "working"):
        data_bytes = segment.read_bytes()
        _, end = scan(data_bytes, 0, "working", str(segment))
        assert end == len(data_bytes)  # the failed append left no partial record
    store.close()
    reopened = MemoryStore(root)
    try:
        assert reopened.count("working") == 26
        for memory_id in [*acknowledged, after.id]:
            reopened.get("working", memory_id)
        assert not reopened.search("working", "x" * 20)
    finally:
        reopened.close()


def test_the_log_reports_its_size_and_records(memory_root: Path) -> None:
    store = _unflushed(memory_root)
    try:
        store.store_batch("episodic", ["a", "b", "c"])
        store.store("episodic", "d")
        wal = LayerLog(memory_root / "episodic", "episodic", 1.0)
        assert wal.check() == 2 and wal.active_bytes() > 2 * HEAD
        store.flush()
        assert wal.check() == 0 and wal.active_bytes() == 0
    finally:
        store.close()


def test_flush_docs_flushes_early_and_the_settings_reach_the_store(data_dir: Path) -> None:
    from jamey_engine.config import Settings

    settings = Settings.from_env(
        {"JAMEY_DATA_DIR": str(data_dir), "JAMEY_FLUSH_INTERVAL": "3600", "JAMEY_FLUSH_DOCS": "5"}
    )
    store = MemoryStore.from_settings(settings)
    try:
        assert (store.wal, store.logs.flush_interval, store.logs.flush_docs) == (True, 3600.0, 5)
        store.store_batch("working", [f"early {i}" for i in range(5)])
        deadline = time.monotonic() + 10
        while store.index("working").searcher().num_docs < 5:
            assert time.monotonic() < deadline, "JAMEY_FLUSH_DOCS did not start a flush"
            time.sleep(0.02)
    finally:
        store.close()
    off = MemoryStore.from_settings(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), "JAMEY_WAL": "off"}))
    try:
        off.store("working", "committed at once")
        assert off.index("working").searcher().num_docs == 6
        assert not any(s.stat().st_size for s in _segments(data_dir / "memory", "working"))
    finally:
        off.close()


def test_a_process_that_exits_without_closing_its_store_flushes_at_exit(memory_root: Path) -> None:
    reader = MemoryStore(memory_root)
    try:
        reader.sizes()  # the layer is open here before the other process writes
        code = f"from memory.workers import store_and_wait; store_and_wait({str(memory_root)!r}, 'left behind', 3600, 0)"
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=_child_env(),
            timeout=60,
            check=True,
        )
        memory_id = result.stdout.split()[0]
        assert [m.id for m in reader.search("working", "behind")] == [memory_id]
    finally:
        reader.close()
