"""The one group-commit queue both write-path threads use (the log's appender and the index's
writer): what a caller of either relies on, shown on a queue whose work the test controls."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jamey_engine.errors import JameyError
from jamey_engine.memory.group_commit import GroupCommitQueue
from jamey_engine.memory.store import MemoryStore


@dataclass
class _Op:
    value: int
    future: Future[None] = field(default_factory=Future)


class _Recording(GroupCommitQueue[_Op]):
    """Commits a group by recording it; the first group waits until the test lets it go."""

    def __init__(self, fail_with: BaseException | None = None) -> None:
        super().__init__("working", "test-group-commit")
        self.groups: list[list[int]] = []
        self.busy = threading.Event()
        self.go_on = threading.Event()
        self.fail_with = fail_with

    def submit(self, value: int) -> Future[None]:
        return self._submit(_Op(value))

    def _process(self, ops: list[_Op]) -> None:
        ops = self._claim(ops)
        self.busy.set()
        self.go_on.wait(10)
        try:
            if self.fail_with is not None:
                raise self.fail_with
            self.groups.append([op.value for op in ops])
        except BaseException as err:
            self._fail(ops, err)
            return
        for op in ops:
            op.future.set_result(None)


def test_what_arrives_while_a_group_commits_is_the_next_group_and_a_cancelled_caller_is_skipped() -> None:
    queue = _Recording()
    try:
        first = queue.submit(0)
        assert queue.busy.wait(10)
        later = [queue.submit(n) for n in range(1, 6)]
        assert later[2].cancel(), "a caller that gave up before its group is taken"
        queue.go_on.set()
        for future in [first, *later[:2], *later[3:]]:
            assert future.result(10) is None
        assert queue.groups == [[0], [1, 2, 4, 5]], "one commit for the five that waited, less the cancelled"
    finally:
        queue.go_on.set()
        queue.close()


def test_a_failed_group_fails_every_caller_in_it_with_the_error() -> None:
    queue = _Recording(fail_with=OSError("disk full"))
    queue.go_on.set()
    try:
        futures = [queue.submit(n) for n in range(3)]
        for future in futures:
            with pytest.raises(OSError, match="disk full"):
                future.result(10)
        assert queue.groups == []
    finally:
        queue.close()


def test_close_commits_what_is_queued_then_refuses_new_work() -> None:
    queue = _Recording()
    first = queue.submit(0)
    assert queue.busy.wait(10)
    queued = queue.submit(1)
    closing = threading.Thread(target=queue.close)
    closing.start()
    queue.go_on.set()
    closing.join(10)
    assert first.done() and queued.done() and queue.groups == [[0], [1]], "nothing queued is dropped"
    with pytest.raises(JameyError, match="layer 'working': the memory store is closed"):
        queue.submit(2)


def test_both_write_path_queues_refuse_work_after_the_store_closes(tmp_path: Path) -> None:
    """Both threads of a layer's write path are this queue: after close, the log's drain and the
    index writer's flush refuse with a clear error (the log's drain used to wait for ever)."""
    store = MemoryStore(tmp_path / "memory", wal=True)
    store.store("working", "one memory")
    log_writer = store.logs.log_writer("working")
    writer = store.writer("working")
    writer.flush()
    store.close()
    assert isinstance(log_writer, GroupCommitQueue) and isinstance(writer, GroupCommitQueue)
    for stop in (log_writer.drain, writer.flush):
        with pytest.raises(JameyError, match="the memory store is closed"):
            stop()
