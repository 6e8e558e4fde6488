"""Auto-diagnosis latency: from the webhook's 200 to the diagnosis verdict stored, for the backup
alert (JameyBackupFailed), through a real ``jamey serve`` (its own process) that starts the
diagnosis run (its own process and kernel) as Alertmanager's delivery arrives.

Each repetition delivers a new alert instance (its own fingerprint) and polls the database until
``alerts show`` would print its verdict; the clock starts when the webhook has answered 200.
Median of ``repeat`` (5; 1 with --quick). Target: at most 15 s.

Baseline, in the same run and on the same data dir: the same diagnosis notebook started directly
(``launch.start_run``, no webhook), from its start to its verdict stored. The ratio is the cost
of the webhook path (claiming the instance, starting the run from the service) over a bare run.

Prometheus is PROMETHEUS_URL from the environment (the stack's, when one runs; an unreachable one
makes the diagnosis note it and end sooner, which the output says). Run it on an idle machine:
``.venv/bin/python -m bench.bench_diagnosis``.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

from bench.common import Row, cli, row
from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.runbooks.alert_evidence import alert_evidence

TARGET_SECONDS = 15.0
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _payload(fingerprint: str) -> dict[str, object]:
    started = utcnow().replace(microsecond=0) - timedelta(seconds=30)
    return {
        "version": "4",
        "receiver": "warning",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "JameyBackupFailed", "severity": "warning", "job": "jamey"},
                "annotations": {"summary": "A Jamey backup failed in the last hour"},
                "startsAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fingerprint,
            }
        ],
    }


def _deliver_and_wait(engine: Engine, url: str, key: str, fingerprint: str) -> float:
    answer = httpx.post(
        f"{url}/alertmanager/webhook",
        json=_payload(fingerprint),
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,  # the first delivery also loads the runbook catalog; a loaded machine is slow
    )
    answer.raise_for_status()
    start = time.perf_counter()
    deadline = start + 300
    while time.perf_counter() < deadline:
        found = alert_evidence(engine.db, fingerprint)
        if found.run is not None and not found.run.active:
            if found.verdict is None:
                raise RuntimeError(f"diagnosis run {found.run.id} {found.run.status}: {found.run.error}")
            return time.perf_counter() - start
        time.sleep(0.05)
    raise RuntimeError(f"no verdict for {fingerprint} within 300 s")


def _run_directly(engine: Engine) -> float:
    """The baseline: the backup alert's diagnosis started without the webhook; seconds to its verdict."""
    from jamey_engine.runbooks import launch

    start = time.perf_counter()
    record = launch.start_run(
        engine,
        "diagnose_alert",
        {"alertname": "JameyBackupFailed", "labels": '{"severity": "warning", "job": "jamey"}'},
        actor="bench",
    )
    finished = launch.wait_for_run(engine, record.id, timeout=300, poll=0.05)
    if finished.active or not (finished.summary or {}).get("verdict"):
        raise RuntimeError(f"diagnosis run {finished.id} {finished.status}: {finished.error}")
    return time.perf_counter() - start


def _prometheus_answered(engine: Engine) -> bool:
    """True when the last diagnosis reached Prometheus (no "Prometheus:" note in its summary)."""
    from jamey_engine.runbooks import runs

    last = runs.list_runs(engine.db, limit=1)
    notes = (last[0].summary or {}).get("notes", []) if last else []
    return not any(str(note).startswith("Prometheus") for note in notes)


def main(quick: bool = False) -> list[Row]:
    """Start a service, deliver ``repeat`` new backup alerts one after another, return the row."""
    repeat = 1 if quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-diagnosis-") as tmp:
        data_dir = Path(tmp) / "data"
        env = {**os.environ, "JAMEY_DATA_DIR": str(data_dir), "JAMEY_AUTO_DIAGNOSE": "1"}
        engine = Engine(Settings.from_env(env))
        key = engine.keys.create("bench-webhook", scopes=("alerts:write",), rate_limit="6000/minute").key
        port = _free_port()
        with (Path(tmp) / "serve.log").open("wb") as log:
            service = subprocess.Popen(
                [sys.executable, "-m", "jamey_engine", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{url}/health", timeout=2)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or service.poll() is not None:
                        raise RuntimeError("jamey serve did not start") from None
                    time.sleep(0.2)
            times = [_deliver_and_wait(engine, url, key, f"bench{n:04d}") for n in range(repeat)]
            baseline = [_run_directly(engine) for _ in range(repeat)]
            prometheus = _prometheus_answered(engine)
        finally:
            service.terminate()
            service.wait(timeout=20)
            engine.close()
    median = statistics.median(times)
    where = "Prometheus answered" if prometheus else "Prometheus unreachable"
    return [
        row(
            f"auto-diagnosis: webhook 200 to verdict stored, backup alert (median of {repeat}; {where})",
            "seconds",
            median,
            baseline=statistics.median(baseline),
            target=f"<= {TARGET_SECONDS:g} s",
            met=median <= TARGET_SECONDS,
            higher_is_better=False,
        )
    ]


if __name__ == "__main__":
    cli(main)
