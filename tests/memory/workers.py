"""Functions run in other processes by the multi-process tests (importable by spawn)."""

from __future__ import annotations

import time
from pathlib import Path

import tantivy

from jamey_engine.memory import MemoryStore


def store_many(root: str, layer: str, prefix: str, count: int, start_at: float) -> list[str]:
    """Store ``count`` memories one by one (as a separate process would) and return their ids."""
    store = MemoryStore(Path(root), lock_timeout=30.0)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        return [store.store(layer, f"{prefix} number {i}").id for i in range(count)]
    finally:
        store.close()


def hold_writer(index_path: str, ready: str, release: str, max_seconds: float = 60.0) -> None:
    """Open a tantivy writer on ``index_path`` and keep it (the lock) until ``release`` exists.

    ``ready`` is created once the lock is held. ``max_seconds`` only keeps a failed test from
    leaving the process behind.
    """
    index = tantivy.Index.open(index_path)
    writer = index.writer(15_000_000, 1)
    Path(ready).touch()
    deadline = time.monotonic() + max_seconds
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.wait_merging_threads()


def write_until_killed(
    root: str, threads: int = 32, flush_interval: float = 0.05, flusher: str = "inline"
) -> None:
    """Store memories from ``threads`` threads until killed, printing each acknowledged write.

    Lines are ``one <id>`` for a single store and ``batch <tag> <id> <id> <id>`` for a batch
    of three whose contents carry ``tag``: after a crash, a batch must be there whole or not
    at all.
    """
    import sys
    import threading
    import uuid

    store = MemoryStore(Path(root), lock_timeout=30.0, flush_interval=flush_interval, flusher=flusher)
    store.sizes()
    out = threading.Lock()
    print("ready", flush=True)

    def loop(n: int) -> None:
        i = 0
        while True:
            i += 1
            if i % 5:
                line = f"one {store.store('episodic', f'crash writer {n} item {i}').id}"
            else:
                tag = uuid.uuid4().hex
                ids = store.store_batch("episodic", [f"batch{tag} part {k}" for k in range(3)])
                line = f"batch {tag} {' '.join(ids)}"
            with out:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

    for n in range(threads):
        threading.Thread(target=loop, args=(n,), daemon=True).start()
    while True:
        time.sleep(1)


def store_and_wait(
    root: str, content: str, flush_interval: float, seconds: float, flusher: str = "inline"
) -> None:
    """Store one memory, print its id, and stay alive (unclosed) for ``seconds``."""
    import sys

    store = MemoryStore(Path(root), flush_interval=flush_interval, flusher=flusher)
    memory = store.store("working", content)
    sys.stdout.write(f"{memory.id} {time.time()}\n")
    sys.stdout.flush()
    time.sleep(seconds)


def flush_and_die_after_commit(root: str, count: int) -> None:
    """Store ``count`` memories (logged, unflushed), print their ids, then flush and die the
    instant the flush's commit is in the index (before the log is cut)."""
    import os
    import sys

    from jamey_engine.memory.wal import LayerLog

    store = MemoryStore(Path(root), lock_timeout=30.0, flush_interval=3600)
    ids = [store.store("working", f"committed before the crash {i}").id for i in range(count)]
    sys.stdout.write(" ".join(ids) + "\n")
    sys.stdout.flush()

    def die(self: LayerLog, upto: int, seconds: float | None = None) -> None:
        os._exit(9)

    LayerLog.end_flush = die  # type: ignore[method-assign]
    store.flush_layer("working")
    os._exit(1)  # not reached: the flush had nothing to commit


def apply_retention_stopped_before_the_switch(data_dir: str, said: str) -> None:
    """Apply retention, but stop (forever) once the prune's new generation is built and before
    it is switched in, after writing "built" to ``said``: the parent kills the process there."""
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from jamey_engine.memory import prune

    def stop_here(*args: object, **kwargs: object) -> bool:
        Path(said).write_text("built")
        while True:
            time.sleep(1)

    prune._catch_up = stop_here  # type: ignore[assignment]
    Engine(Settings.from_env({"JAMEY_DATA_DIR": data_dir})).apply_retention(actor="tester")


def flush_and_die_at(root: str, point: str) -> None:
    """Flush the episodic layer's log (as the flusher does) and die by SIGKILL at ``point``:
    ``sealed`` (epoch raised, nothing read), ``marked`` (the flush marker written, before the
    commit), ``committed`` (the commit in the index, before the flushed mark), ``deleting``
    (the mark written, one segment file removed, the others not)."""
    import os
    import signal

    from jamey_engine.memory import wal as wal_module
    from jamey_engine.memory.wal import LayerLog

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "sealed":
        real_seal = LayerLog.seal

        def seal(self: LayerLog) -> int:
            real_seal(self)
            die()
            return 0

        LayerLog.seal = seal  # type: ignore[method-assign]
    elif point == "marked":
        real_begin = LayerLog.begin_flush

        def begin(self: LayerLog, upto: int) -> bool:
            real_begin(self, upto)
            die()
            return False

        LayerLog.begin_flush = begin  # type: ignore[method-assign]
    elif point == "committed":

        def end(self: LayerLog, upto: int, seconds: float | None = None) -> None:
            die()

        LayerLog.end_flush = end  # type: ignore[method-assign]
    elif point == "deleting":
        real_unlink = os.unlink

        def unlink(path: object, *args: object, **kwargs: object) -> None:
            real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]
            if os.path.basename(str(path)).startswith("wal-"):
                die()

        wal_module.os.unlink = unlink  # type: ignore[assignment]
    else:
        raise ValueError(point)
    store = MemoryStore(Path(root), lock_timeout=30.0, flush_interval=3600)
    store.flush_layer("episodic")
    os._exit(1)  # not reached: the flush had nothing to do
