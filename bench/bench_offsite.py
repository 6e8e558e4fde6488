"""Off-site copies: a backup with the copy and check to a real `rclone serve webdav` on loopback,
against the backup alone, and the copy's throughput against `rclone copyto` of the same
archive run by hand (target: at least 80% of it).

Usage: python -m bench.bench_offsite [--quick] [--megabytes N]   (default 1000, the issue's
figure: a 1 GB data dir; --quick: 20)
The copy includes what `rclone copyto` does not: a listing for the size, the SHA-256 of the
local archive, the remote's SHA-256 (downloaded again: webdav keeps no hash) and the sidecar.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations
from jamey_engine.vault.rclone import FLAGS


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fill(engine: Engine, megabytes: int) -> None:
    batch = [{"content": os.urandom(24_000).hex()} for _ in range(40)]  # ~1.9 MB of text a batch
    for _ in range(max(1, megabytes * 1_000_000 // (40 * 48_000))):
        engine.memory.store_batch("long_term", batch)
    from jamey_engine.errors import Busy

    for attempt in range(5):  # the background flush may hold the log's flush lock (loaded machine)
        try:
            engine.memory.flush()
            break
        except Busy:
            if attempt == 4:
                raise
            time.sleep(2)


def main(megabytes: int = 20) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-offsite-") as tmp:
        root = Path(tmp)
        served = root / "served"
        served.mkdir()
        port = _free_port()
        server = subprocess.Popen(
            ["rclone", "serve", "webdav", str(served), "--addr", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            data = root / "data"
            data.mkdir(mode=0o700)
            base = {"JAMEY_DATA_DIR": str(data)}
            alone = Engine(Settings.from_env(base))
            _fill(alone, megabytes)
            started = time.monotonic()
            plain = alone.vault.create()
            backup_alone = time.monotonic() - started
            # Else the next backup's sync copies this one too (a backup never copied is due),
            # and "backup + copy" would hold two copies.
            alone.vault.delete(plain.id)
            alone.close()

            remote = f":webdav,url='http://127.0.0.1:{port}/':bench"
            copied = Engine(Settings.from_env({**base, "JAMEY_BACKUP_REMOTE": remote}))
            started = time.monotonic()
            info = copied.vault.create()
            backup_with_copy = time.monotonic() - started
            copy = recent_operations(copied.db, kind="offsite")[0]
            assert info.location == "both", info.problem
            from jamey_engine.vault.rclone import Rclone

            transport = Rclone(copied.settings)
            started = time.monotonic()
            transport.put(info.path, "again-" + info.path.name)
            copy_only = time.monotonic() - started
            copied.close()

            started = time.monotonic()
            subprocess.run(
                [
                    "rclone",
                    *FLAGS,
                    "copyto",
                    str(info.path),
                    f"{remote.rsplit(':', 1)[0]}:by-hand/{info.path.name}",
                ],
                env={**os.environ, "RCLONE_CONFIG": "/dev/null"},
                check=True,
                capture_output=True,
            )
            by_hand = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=10)
    size = info.size_bytes / 1e6
    ours = float(str(copy["duration_seconds"]))
    print(f"archive {size:.1f} MB (data dir ~{megabytes} MB), machine: {os.cpu_count()} cores")
    print(f"backup alone            {backup_alone:6.2f} s  ({plain.size_bytes / 1e6:.1f} MB)")
    print(f"backup + copy + check   {backup_with_copy:6.2f} s  (+{backup_with_copy - backup_alone:.2f} s)")
    print(f"copy + check (ours)     {ours:6.2f} s  {size / ours:7.1f} MB/s")
    print(f"copy step alone (ours)  {copy_only:6.2f} s  {size / copy_only:7.1f} MB/s")
    print(f"rclone copyto by hand   {by_hand:6.2f} s  {size / by_hand:7.1f} MB/s")
    print(f"copy step / by hand     {by_hand / copy_only:6.0%}   (target >= 80%)")
    print(f"copy + check / by hand  {by_hand / ours:6.0%}   (the check downloads the copy again)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20 MB data dir (while developing)")
    parser.add_argument("--megabytes", type=int, default=1000, help="size of the data dir (default 1000)")
    parser.add_argument("legacy", nargs="?", type=int, help=argparse.SUPPRESS)  # the old positional form
    args = parser.parse_args()
    main(20 if args.quick else (args.legacy or args.megabytes))
