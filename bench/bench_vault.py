"""PhoenixVault throughput: backup, restore and verify of a real data dir, against tar in the same run.

The data dir is built for real: memory indexes filled through ``store_batch`` with 32 KB
documents of Zipf-distributed words (until the indexes reach the target size), plus a few
API keys in the SQLite database. Baselines are ``tar -czf`` and ``tar -xzf`` of the same
files (``memory/`` and ``jamey.db``). Throughput is bytes of the data dir per second.
Our numbers include what tar does not do: per-file SHA-256, fsync of the archive (backup),
and for restore the verification, index checks, fsync of every file and the atomic switch.
The full run uses ~1 GB; ``--quick`` ~20 MB.

Encrypted backups (age, to one X25519 recipient) are timed on the same data dir against
``tar --zstd -c | age -r`` (backup) and ``age -d | tar --zstd -x`` (restore): what the
standard tools do with the same files, without checksums, checks or fsync.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import Row, cli, row
from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.memory import LAYERS

DOC_BYTES = 32_000
BATCH = 200
TARGET = ">= 50% of tar"


def _text_pool(seed: int = 7, words: int = 2_000_000) -> str:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=int(rng.integers(3, 11)))) for _ in range(20_000)]
    return " ".join(vocab[i] for i in rng.zipf(1.3, size=words) % len(vocab))


def _data_bytes(data_dir: Path) -> int:
    """Bytes of the files tar archives: memory/ and jamey.db (tantivy may drop temporaries meanwhile)."""
    total = 0
    for path in [*(data_dir / "memory").rglob("*"), data_dir / "jamey.db"]:
        try:
            if path.is_file():
                total += path.stat().st_size
        except FileNotFoundError:
            continue
    return total


def build_data_dir(engine: Engine, target_bytes: int) -> int:
    """Fill the memory layers until the data dir holds ``target_bytes``; return its size."""
    pool = _text_pool(words=min(2_000_000, max(200_000, target_bytes // 400)))
    rng = np.random.default_rng(11)
    for n in range(5):
        engine.keys.create(f"bench-{n}", scopes=("memory:read",))
    batch = 0
    while _data_bytes(engine.settings.data_dir) < target_bytes:
        offsets = rng.integers(0, len(pool) - DOC_BYTES, size=BATCH)
        items = [{"content": pool[int(o) : int(o) + DOC_BYTES]} for o in offsets]
        engine.memory.store_batch(LAYERS[batch % len(LAYERS)], items)
        batch += 1
    return _data_bytes(engine.settings.data_dir)


def _stage(name: str, seconds: float) -> None:
    print(f"   {name}: {seconds:.2f}s", file=sys.stderr, flush=True)


def _timed(
    name: str, fn: Callable[[], object], repeat: int, between: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if between is not None:
            between()
    _stage(name, statistics.median(times))
    return statistics.median(times)


def _drop(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def main(quick: bool = False) -> list[Row]:
    """Build the data dir, then time backup/tar -czf, restore/tar -xzf and verify (medians)."""
    target = 20 * 2**20 if quick else 2**30
    repeat = 3 if quick else 2
    work = Path(tempfile.mkdtemp(prefix="bench-vault-", dir=os.environ.get("JAMEY_BENCH_TMP")))
    data_dir = work / "data"
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), "JAMEY_BACKUP_DIR": str(work / "b")}))
    try:
        started = time.perf_counter()
        size = build_data_dir(engine, target)
        _stage(f"built a {size / 1e6:,.0f} MB data dir", time.perf_counter() - started)
        mb = size / 1e6
        vault = engine.vault
        engine.memory.flush()

        created: list[str] = []

        def backup() -> None:
            created.append(vault.create().id)

        def forget_backup() -> None:
            vault.delete(created.pop())

        tarball = work / "baseline.tar.gz"
        ours_backup = _timed("vault backup", backup, repeat, forget_backup)
        tar_backup = _timed(
            "tar -czf",
            lambda: subprocess.run(
                ["tar", "-czf", str(tarball), "-C", str(data_dir), "memory", "jamey.db"], check=True
            ),
            repeat,
        )
        backup_id = vault.create().id
        archive = vault.get(backup_id).size_bytes
        ours_verify = _timed("vault verify", lambda: vault.verify(backup_id), repeat)
        ours_restore = _timed("vault restore", lambda: vault.restore(backup_id, safety_backup=False), repeat)
        out = work / "untar"

        def untar() -> None:
            out.mkdir()
            subprocess.run(["tar", "-xzf", str(tarball), "-C", str(out)], check=True)

        tar_restore = _timed("tar -xzf", untar, repeat, lambda: _drop(out))
        gzip_size = tarball.stat().st_size
        secret = _encrypted(work, data_dir, repeat)
    finally:
        engine.close()
        shutil.rmtree(work, ignore_errors=True)

    label = f"vault {mb:,.0f} MB data dir"
    backup_ratio = (mb / ours_backup) / (mb / tar_backup)
    restore_ratio = (mb / ours_restore) / (mb / tar_restore)
    return [
        row(
            label,
            "backup MB/s (vs tar -czf)",
            mb / ours_backup,
            baseline=mb / tar_backup,
            target=TARGET,
            met=backup_ratio >= 0.5,
        ),
        row(
            label,
            "restore MB/s (vs tar -xzf)",
            mb / ours_restore,
            baseline=mb / tar_restore,
            target=TARGET,
            met=restore_ratio >= 0.5,
        ),
        row(label, "verify MB/s", mb / ours_verify),
        row(
            label, "archive MB (vs .tar.gz)", archive / 1e6, baseline=gzip_size / 1e6, higher_is_better=False
        ),
        row(
            label,
            "encrypted backup MB/s (vs tar --zstd, piped to age -r)",
            mb / secret["backup"],
            baseline=mb / secret["tools_backup"],
        ),
        row(
            label,
            "encrypted restore MB/s (vs age -d, piped to tar --zstd -x)",
            mb / secret["restore"],
            baseline=mb / secret["tools_restore"],
        ),
        row(
            label,
            "encrypted backup MB/s (vs plain vault backup)",
            mb / secret["backup"],
            baseline=mb / ours_backup,
        ),
        row(
            label,
            "encrypted restore MB/s (vs plain vault restore)",
            mb / secret["restore"],
            baseline=mb / ours_restore,
        ),
    ]


def _encrypted(work: Path, data_dir: Path, repeat: int) -> dict[str, float]:
    """Median seconds of an encrypted backup and restore, and of the standard tools' pipelines."""
    key = work / "key.txt"
    done = subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True)
    recipient = done.stderr.strip().removeprefix("Public key: ")
    engine = Engine(
        Settings.from_env(
            {
                "JAMEY_DATA_DIR": str(data_dir),
                "JAMEY_BACKUP_DIR": str(work / "encrypted"),
                "JAMEY_BACKUP_RECIPIENTS": recipient,
                "JAMEY_BACKUP_IDENTITY_FILE": str(key),
            }
        )
    )
    try:
        vault = engine.vault
        created: list[str] = []
        result = {
            "backup": _timed(
                "encrypted vault backup",
                lambda: created.append(vault.create().id),
                repeat,
                lambda: vault.delete(created.pop()),
            )
        }
        backup_id = vault.create().id
        result["restore"] = _timed(
            "encrypted vault restore", lambda: vault.restore(backup_id, safety_backup=False), repeat
        )
        sealed = work / "baseline.tar.zst.age"
        pack = f"tar --zstd -c -C {data_dir} memory jamey.db | age -r {recipient} -o {sealed}"
        result["tools_backup"] = _timed(
            "tar --zstd | age -r",
            lambda: subprocess.run(pack, shell=True, check=True),  # noqa: S602 (the pipeline is the baseline)
            repeat,
        )
        out = work / "unsealed"

        def unpack() -> None:
            out.mkdir()
            command = f"age -d -i {key} {sealed} | tar --zstd -x -C {out}"
            subprocess.run(command, shell=True, check=True)  # noqa: S602 (the pipeline is the baseline)

        result["tools_restore"] = _timed("age -d | tar --zstd -x", unpack, repeat, lambda: _drop(out))
    finally:
        engine.close()
    return result


if __name__ == "__main__":
    cli(main)
