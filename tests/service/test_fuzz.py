"""Schemathesis with every check, on every phase (stateful included), against a real `jamey serve`.

The `schemathesis run` CLI drives a real service process on PostgreSQL with an admin key:
``--checks all`` (no server error, status codes, content types, response schemas, headers,
schema-valid requests accepted, schema-violating requests refused, ...) over the examples,
coverage, fuzzing and stateful phases. The seed and the examples per operation are fixed, so
every run sends the same requests and stays within a couple of minutes; raise MAX_EXAMPLES
locally to explore.

The fuzzer's own key: GET /admin/keys lists every key, its own included, so stateful links
could feed its id to revoke or rotate. Requests after that would get the documented 401 and
pass every check while testing nothing. The test therefore checks after the run that the key
still works: with this seed it does, and a change that makes the run revoke its key fails here
(then exclude the self-revoking link with a comment, or give the run a key it cannot list).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from service_support import ROOT, RunningServer
from test_serve import cli_key

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SEED = 1
MAX_EXAMPLES = 10
PHASES = "examples,coverage,fuzzing,stateful"


def test_schemathesis_finds_nothing_with_every_check(
    serve: Callable[..., RunningServer], postgres_url: str
) -> None:
    server = serve(JAMEY_DATABASE_URL=postgres_url)
    admin = cli_key(server, "fuzz-admin", "admin", rate_limit="1000000/minute")
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
            "--header",
            f"Authorization: Bearer {admin['key']}",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    # The failures' headings, checks, answers and replay ids (request bodies can be 64 KB).
    summary = "\n".join(
        line[:300]
        for line in result.stdout.splitlines()
        if line.startswith(("___", "- ST", "[", "    `", "    Expected", "    Hint", "    curl"))
        or "SUMMARY" in line
    )
    summary += result.stdout[-1500:]
    assert result.returncode == 0, summary + result.stderr[-2000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout, summary
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in result.stdout, summary
    assert "Traceback" not in server.log()
    whoami = httpx.get(f"{server.url}/whoami", headers={"X-API-Key": admin["key"]}, timeout=10)
    assert whoami.status_code == 200, "the run revoked or rotated its own key: " + whoami.text
