"""API keys and rate limits: cached and uncached verification, rate-limit decisions in memory and Redis.

Targets (issue 3): a cached verify plus an in-memory decision together take 50 µs or less; a
first, uncached verify on SQLite takes 2 ms or less. Each number is the median of several
batches; baselines run in the same process on the same data.

Run alone: ``.venv/bin/python -m bench.bench_keys [--quick]``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from bench.common import Row, cli, row
from jamey_engine.config import Settings
from jamey_engine.db import Database
from jamey_engine.errors import KeyRejected
from jamey_engine.keys import KeyManager
from jamey_engine.keys.ratelimit import MAX_KEY_LIMIT, RateLimiter

REDIS_URL = os.environ.get("JAMEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("JAMEY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def per_call_us(fn: Callable[[int], None], calls: int, batches: int) -> float:
    """Median over ``batches`` of the mean µs per call of ``fn(i)`` run ``calls`` times."""
    results = []
    for _ in range(batches):
        start = time.perf_counter()
        for index in range(calls):
            fn(index)
        results.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(results)


def _keys_on(url: str, data_dir: Path, count: int) -> tuple[Database, KeyManager, list[str]]:
    settings = Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), "JAMEY_DATABASE_URL": url})
    db = Database(url)
    keys = KeyManager(db, settings)
    plaintexts = [keys.create(f"bench-{i}", rate_limit=f"{MAX_KEY_LIMIT}/minute").key for i in range(count)]
    keys.verify(plaintexts[0])  # warm the pool and the statement cache
    return db, keys, plaintexts


def bench_verification(quick: bool, data_dir: Path) -> list[Row]:
    calls, batches, n_keys = (300, 3, 20) if quick else (20_000, 7, 200)
    db, keys, plaintexts = _keys_on(f"sqlite:///{data_dir / 'jamey.db'}", data_dir, n_keys)
    rows: list[Row] = []
    try:

        def uncached(i: int) -> None:
            keys.forget_cache()
            keys.verify(plaintexts[i % n_keys])

        def cached(i: int) -> None:
            keys.verify(plaintexts[i % n_keys])

        def select_one(_: int) -> None:
            with db.connect() as conn:
                conn.execute(sa.text("SELECT 1")).scalar()

        bad = plaintexts[0][:-1] + ("A" if plaintexts[0][-1] != "A" else "B")

        def malformed(_: int) -> None:
            with contextlib.suppress(KeyRejected):
                keys.verify(bad)

        uncached_calls = max(50, calls // 20)
        uncached_us = per_call_us(uncached, uncached_calls, batches)
        select_us = per_call_us(select_one, uncached_calls, batches)
        for i in range(n_keys):
            cached(i)
        cached_us = per_call_us(cached, calls, batches)
        malformed_us = per_call_us(malformed, calls, batches)
        keys.flush_last_used()
        rows += [
            row(
                "keys",
                "uncached verify, SQLite (ms/call)",
                uncached_us / 1000,
                baseline=select_us / 1000,
                target="<= 2 ms",
                met=uncached_us <= 2000,
                higher_is_better=False,
            ),
            row(
                "keys",
                "cached verify (µs/call)",
                cached_us,
                baseline=uncached_us,
                target="(with a decision) <= 50 µs",
                met=None,
                higher_is_better=False,
            ),
            row("keys", "malformed key rejected, no query (µs/call)", malformed_us, higher_is_better=False),
        ]
    finally:
        db.close()
    return [*rows, _cached_plus_decision(quick, data_dir)]


def _cached_plus_decision(quick: bool, data_dir: Path) -> Row:
    calls, batches, n_keys = (300, 3, 20) if quick else (5_000, 7, 200)
    db, keys, plaintexts = _keys_on(f"sqlite:///{data_dir / 'combined.db'}", data_dir, n_keys)
    try:
        for plaintext in plaintexts:
            keys.verify(plaintext)
        results = []
        for _ in range(batches):
            limiter = RateLimiter("memory://", "20000/second")  # the default global limit

            def request(i: int, limiter: RateLimiter = limiter) -> None:
                key = keys.verify(plaintexts[i % n_keys])
                limiter.hit(key.id, key.rate_limit)

            results.append(per_call_us(request, calls, 1))
            limiter.close()
        combined = statistics.median(results)
    finally:
        db.close()
    return row(
        "keys",
        "cached verify + in-memory decision (µs/request)",
        combined,
        target="<= 50 µs",
        met=combined <= 50,
        higher_is_better=False,
    )


def bench_postgres_verification(quick: bool, data_dir: Path) -> list[Row]:
    name = f"jamey_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        admin.dispose()
        return []  # no PostgreSQL here: the SQLite numbers are the targets
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        db, keys, plaintexts = _keys_on(url, data_dir, 10)

        def uncached(i: int) -> None:
            keys.forget_cache()
            keys.verify(plaintexts[i % 10])

        try:
            value = per_call_us(uncached, 30 if quick else 300, 3 if quick else 5)
        finally:
            db.close()
        return [row("keys", "uncached verify, PostgreSQL (ms/call)", value / 1000, higher_is_better=False)]
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def decisions_per_second(storage_url: str, calls: int, batches: int, threads: int = 1) -> float:
    """Median decisions/s of ``threads`` threads hitting distinct keys (all admitted)."""
    results = []
    for _ in range(batches):
        limiter = RateLimiter(storage_url, f"{calls * 10}/minute")
        prefix = uuid.uuid4().hex
        per_thread = calls // threads

        def work(
            t: int, limiter: RateLimiter = limiter, prefix: str = prefix, per_thread: int = per_thread
        ) -> None:
            for i in range(per_thread):
                limiter.hit(f"{prefix}-{t}-{i % 100}", f"{MAX_KEY_LIMIT}/minute")

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        results.append(per_thread * threads / (time.perf_counter() - start))
        if limiter.storage_failures:
            raise RuntimeError(
                f"{storage_url}: {limiter.storage_failures} storage failures during the benchmark"
            )
        limiter.close()
    return statistics.median(results)


def bench_decisions(quick: bool) -> list[Row]:
    calls, batches = (300, 3) if quick else (3_000, 5)
    memory = decisions_per_second("memory://", calls, batches)
    rows = [row("ratelimit", "decisions/s, memory, 1 thread", memory)]
    try:
        redis_one = decisions_per_second(REDIS_URL, calls // 3, batches)
        redis_four = decisions_per_second(REDIS_URL, calls // 3, batches, threads=4)
    except RuntimeError:
        return rows
    rows += [
        row("ratelimit", "decisions/s, Redis, 1 thread", redis_one, baseline=memory),
        row("ratelimit", "decisions/s, Redis, 4 threads", redis_four, baseline=memory),
    ]
    return rows


def main(quick: bool = False) -> list[Row]:
    """Every key and rate-limit benchmark; rows as bench/common.py describes."""
    with tempfile.TemporaryDirectory(prefix="jamey-bench-keys-") as tmp:
        data_dir = Path(tmp)
        rows = bench_verification(quick, data_dir)
        rows += bench_postgres_verification(quick, data_dir)
        rows += bench_decisions(quick)
    return rows


if __name__ == "__main__":
    cli(main)
