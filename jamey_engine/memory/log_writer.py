"""The group-commit thread that appends to a layer's write-ahead log.

``LogWriter`` is the write path: callers queue records and wait on a future; one thread per
layer and process takes everything queued, appends it in one write and one fdatasync (group
commit), puts the memories into the layer's in-memory tier (``memory/tier.py``), then resolves
the futures. So a caller returns only once its memory is durable and visible to its own process.
The queue itself is ``memory/group_commit.py``'s, shared with the index writer.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from jamey_engine.memory.group_commit import GroupCommitQueue
from jamey_engine.memory.tier import Tier
from jamey_engine.memory.wal import Doc, LayerLog, encode_add, encode_delete


@dataclass
class _Op:
    data: bytes
    apply: Callable[[int], None]
    future: Future[None] = field(default_factory=Future)


class LogWriter(GroupCommitQueue[_Op]):
    """One layer's group-commit appender in this process (see the module docstring)."""

    def __init__(self, wal: LayerLog, tier: Tier, on_written: Callable[[], None]) -> None:
        super().__init__(wal.layer, f"jamey-memory-log-{wal.layer}")
        self.wal = wal
        self.tier = tier
        self.on_written = on_written
        self.appends = 0

    def add(self, docs: list[Doc], added: int) -> Future[None]:
        """Log ``docs``; the future resolves once they are durable and in the tier."""

        def apply(seq: int) -> None:
            self.tier.add(seq, docs, added)

        return self._submit(_Op(encode_add(docs), apply))

    def delete(self, memory_id: str, on_disk: bool) -> Future[None]:
        """Log the deletion of ``memory_id``; the future resolves once it is durable and applied."""

        def apply(seq: int) -> None:
            self.tier.delete(seq, memory_id, on_disk)

        return self._submit(_Op(encode_delete(memory_id), apply))

    def drain(self) -> None:
        """Wait until everything queued before this call is appended (or failed)."""
        if self.started:
            self._submit(_Op(b"", lambda seq: None)).result()

    def _process(self, ops: list[_Op]) -> None:
        ops = self._claim(ops)
        if not ops:
            return
        data = b"".join(op.data for op in ops)
        try:
            seq = self.wal.append(data) if data else 0
            if data:
                self.appends += 1
                with self.tier.lock:
                    for op in ops:
                        op.apply(seq)
        except BaseException as err:
            self._fail(ops, err)
            return
        for op in ops:
            op.future.set_result(None)
        if data:
            self.on_written()
