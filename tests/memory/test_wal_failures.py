"""The write-ahead log's failure paths, through the store's public API: a zero-filled tail, an
unreadable record in the middle, a lock held past the timeout (Busy) and a background flush
that fails. Each keeps every acknowledged memory, and each says what went wrong.

The log's files are damaged or locked from outside, as a crash or another process would; the
store is only ever driven through ``store``/``search``/``get``/``count``/``flush``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import copies_of_each_id, wait_until

from jamey_engine.errors import Busy, LogCorrupt
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.wal import FLUSH_LOCK, HEAD, encode_add, frame

LAYER = "working"


def _unflushed(root: Path, **kwargs: float) -> MemoryStore:
    """A store whose background flush never runs during a test (unless told otherwise)."""
    options = {"lock_timeout": 5.0, "flush_interval": 3600.0, **kwargs}
    return MemoryStore(root, **options)  # type: ignore[arg-type]


def _active_segment(root: Path) -> Path:
    """The log file the last append went to (the newest non-empty one)."""
    written = [path for path in sorted((root / LAYER).glob("wal-*.log")) if path.stat().st_size]
    assert written, f"no write-ahead log with records in {root / LAYER}"
    return written[-1]


@contextmanager
def held_by_another_process(lock_file: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds an exclusive flock on ``lock_file`` until the block ends."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(lock_file)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.stdin is not None:
            holder.stdin.close()  # the holder reads EOF, exits, and its lock goes with it
        holder.wait(timeout=30)


# -- a zero-filled tail ------------------------------------------------------------------------
def _in_flight_record() -> bytes:
    return encode_add([("00000000-0000-4000-8000-0000000000ff", "never acknowledged", datetime.now(UTC))])


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(lambda: b"\0" * 4096, id="zeros-after-the-last-record"),
        pytest.param(lambda: b"\0" * len(_in_flight_record()), id="a-whole-record-of-zeros"),
        pytest.param(
            lambda: _in_flight_record()[:HEAD] + b"\0" * (len(_in_flight_record()) - HEAD),
            id="a-header-then-a-zeroed-payload",
        ),
    ],
)
def test_a_zero_filled_tail_is_ignored_and_cut_and_every_acknowledged_memory_is_there_once(
    memory_root: Path, tail: object
) -> None:
    """A crash mid-append can leave the file longer than its data (the size reached the disk,
    the blocks did not): zeros, where a record was being written. They are a torn tail, not damage."""
    writer = _unflushed(memory_root)
    acknowledged = [writer.store(LAYER, f"kept before the crash {n}").id for n in range(3)]
    segment = _active_segment(memory_root)
    with segment.open("ab") as handle:
        handle.write(tail())  # type: ignore[operator]
    damaged_size = segment.stat().st_size

    opener = MemoryStore(memory_root)  # the next process to serve the layer
    try:
        assert sorted(m.id for m in opener.search(LAYER, "*", limit=10)) == sorted(acknowledged)
        after = opener.store(LAYER, "written after the zeros").id
        assert copies_of_each_id(opener, LAYER) == dict.fromkeys([*acknowledged, after], 1)
        remaining = sorted((memory_root / LAYER).glob("wal-*.log"))
        assert all(b"\0" * 64 not in path.read_bytes() for path in remaining), "the zeros were cut"
        assert not remaining or sum(p.stat().st_size for p in remaining) < damaged_size
    finally:
        opener.close()
        writer.close()
    again = MemoryStore(memory_root)
    try:
        assert copies_of_each_id(again, LAYER) == dict.fromkeys([*acknowledged, after], 1)
    finally:
        again.close()


# -- an unreadable record in the middle --------------------------------------------------------
def test_an_unreadable_record_between_good_ones_is_a_clear_error_and_nothing_is_cut(
    memory_root: Path,
) -> None:
    """A record whose frame and checksums are whole but whose content is no record (written by a
    bug or another program): every door refuses the layer, naming layer, file and byte, and the
    log keeps every byte, the records after it too (never skipped, never cut as a tail)."""
    writer = _unflushed(memory_root)
    before = writer.store(LAYER, "the record before").id
    segment = _active_segment(memory_root)
    offset = segment.stat().st_size
    with segment.open("ab") as handle:
        handle.write(frame(b'{"o": "no such operation"}'))
    after = writer.store(LAYER, "the record after").id  # appended behind the unreadable one
    damaged = segment.read_bytes()
    assert len(damaged) > offset + HEAD, "the record after it is in the same file"

    opener = MemoryStore(memory_root, lock_timeout=5.0)
    try:
        for action in (
            lambda: opener.search(LAYER, "*"),
            lambda: opener.get(LAYER, before),
            lambda: opener.count(LAYER),
            lambda: opener.store(LAYER, "refused while the log is damaged"),
        ):
            with pytest.raises(LogCorrupt) as caught:
                action()
            message = str(caught.value)
            assert f"layer '{LAYER}'" in message and "unreadable record" in message, message
            assert f"byte {offset}" in message and str(segment) in message, message
            assert "\n" not in message
        assert opener.count("episodic") == 0  # the other layers still serve
    finally:
        opener.close()
        writer.close()  # its flush at close fails too, and keeps the records
    assert segment.read_bytes() == damaged, "nothing was cut, skipped or rewritten"
    assert before.encode() in damaged and after.encode() in damaged


# -- the lock timeout ---------------------------------------------------------------------------
def test_a_flush_lock_held_past_the_timeout_is_busy_and_the_log_keeps_the_records(
    memory_root: Path,
) -> None:
    store = _unflushed(memory_root, lock_timeout=0.5)
    try:
        ids = [store.store(LAYER, f"waiting for the flush {n}").id for n in range(4)]
        with held_by_another_process(memory_root / LAYER / FLUSH_LOCK):
            with pytest.raises(Busy, match="flush stayed busy in another process"):
                store.flush_layer(LAYER)
            assert _active_segment(memory_root).exists()
            assert sorted(m.id for m in store.search(LAYER, "*")) == sorted(ids)  # still served
        assert copies_of_each_id(store, LAYER) == dict.fromkeys(ids, 1)
    finally:
        store.close()


# -- a background flush that fails ----------------------------------------------------------------
def test_a_failing_background_flush_is_logged_and_counted_and_loses_nothing(
    memory_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The background flush meets a flush lock another process holds: each attempt raises Busy,
    which the flush thread logs and counts, and the memories stay in the log (and served from
    this process's tier) until a later flush, once the lock is free, puts each in the index once."""
    caplog.set_level(logging.WARNING, logger="jamey_engine.memory")
    store = MemoryStore(memory_root, lock_timeout=0.2, flush_interval=0.05)
    try:
        with held_by_another_process(memory_root / LAYER / FLUSH_LOCK):
            ids = [store.store(LAYER, f"flushed later {n}").id for n in range(5)]
            wait_until(lambda: store.logs.flush_failures >= 2, 60, "two failed background flushes")
            assert store.logs.flushes == 0, "nothing was flushed while the lock was held"
            assert sorted(m.id for m in store.search(LAYER, "*")) == sorted(ids)
            assert _active_segment(memory_root).exists(), "the records are still in the log"
            warned = [
                r.getMessage()
                for r in caplog.records
                if "flushing the write-ahead log failed" in r.getMessage()
            ]
            assert warned and f"layer {LAYER}" in warned[0] and "busy" in warned[0], warned
        # The lock is free: the next background flush gets through, with no call from here.
        wait_until(lambda: store.logs.flushes >= 1, 60, "a background flush after the lock was freed")
        other = MemoryStore(memory_root, flush_interval=3600)  # another process's view: the index
        try:
            assert sorted(m.id for m in other.search(LAYER, "*", limit=10)) == sorted(ids)
            assert copies_of_each_id(other, LAYER) == dict.fromkeys(ids, 1)
        finally:
            other.close()
    finally:
        store.close()
