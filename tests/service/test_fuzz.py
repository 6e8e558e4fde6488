"""Schemathesis with every check, on every phase (stateful included), against a real `jamey serve`.

The `schemathesis run` CLI drives a real service process on PostgreSQL with an admin key:
``--checks all`` (no server error, status codes, content types, response schemas, headers,
schema-valid requests accepted, schema-violating requests refused, ...) over the examples,
coverage, fuzzing and stateful phases. The seed and the examples per operation are fixed, so
every run sends the same requests and stays within a couple of minutes; raise MAX_EXAMPLES
locally to explore. Every operation is in the run, none excluded: the schema states each rule
the handlers enforce, the Alertmanager webhook's raw-read payload and the retention routes'
layers and limits included.

The fuzzer's own key: GET /admin/keys lists every key, its own included, so stateful links
feed its id to revoke and rotate (with this seed they do). Rather than exclude those operations,
the run authenticates with a pool of admin keys (fuzz_hooks.py) and moves to the next key once
its key is refused; the test checks that the pool was not used up, so every operation was
exercised with a working key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from service_support import RunningServer, make_persona

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SEED = 1
MAX_EXAMPLES = 10
PHASES = "examples,coverage,fuzzing,stateful"
POOL = 8
HERE = Path(__file__).resolve().parent


# Every route, every phase: the API grew (plans, schedules, acknowledgements), and stateful runs
# start runbook runs, so the run takes minutes on a shared machine; bounded, not open-ended.
@pytest.mark.timeout(900)
def test_schemathesis_finds_nothing_with_every_check(
    serve: Callable[..., RunningServer], postgres_url: str, tmp_path: Path
) -> None:
    server = serve(JAMEY_DATABASE_URL=postgres_url)
    engine = Engine(Settings.from_env(server.env))
    try:
        pool = [
            make_persona(engine, f"fuzz-admin-{number}", ("admin",), rate_limit="100000/minute").key
            for number in range(POOL)
        ]
    finally:
        engine.close()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            PHASES,
            "--seed",
            str(SEED),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--request-timeout",
            "30",
            # Hypothesis's "too slow" health check times the data generation itself, so on a
            # loaded 2-core machine it fails runs for the machine's load, not for the API (seen:
            # POST /memories/batch under load 13). The other health checks stay on.
            "--suppress-health-check",
            "too_slow",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=840,
        cwd=tmp_path,  # its .schemathesis cache goes there, not into the repository
        check=False,
        env={
            **server.env,
            "SCHEMATHESIS_HOOKS": "fuzz_hooks",
            "PYTHONPATH": os.pathsep.join([str(HERE), server.env.get("PYTHONPATH", "")]),
            "JAMEY_FUZZ_KEYS": ",".join(pool),
            "JAMEY_FUZZ_URL": server.url,
        },
    )
    # The failures' headings, checks, answers and replay ids (request bodies can be 64 KB).
    summary = "\n".join(
        line[:300]
        for line in result.stdout.splitlines()
        if line.startswith(("___", "- ST", "[", "    `", "    Expected", "    Hint", "    curl"))
        or "SUMMARY" in line
        or "health check" in line.lower()
    )
    summary += result.stdout[-1500:]
    assert result.returncode == 0, summary + result.stderr[-2000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout, summary
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in result.stdout, summary
    assert "Traceback" not in server.log()
    working = [
        key
        for key in pool
        if httpx.get(f"{server.url}/whoami", headers={"X-API-Key": key}, timeout=10).status_code == 200
    ]
    assert working, f"the run revoked all {POOL} of its keys: later operations saw only 401s"
