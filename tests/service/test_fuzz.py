"""Schemathesis fuzzes every operation of /openapi.json with an admin key: never a 5xx.

Beyond "no server error" it checks that answers match the documented status codes and
schemas. Examples per operation are bounded (and derandomized) so the run stays well under a
minute and is the same on every run; raise MAX_EXAMPLES locally to explore (150 found the
timestamp-range 500s fixed in the memory store).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from service_support import make_persona, service_settings

from jamey_engine.engine import Engine
from jamey_engine.service import create_app

with warnings.catch_warnings():
    warnings.simplefilter(
        "ignore", UserWarning
    )  # starlette's httpx2 notice, if schemathesis imports it first
    import schemathesis
    from schemathesis import checks

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30


# schemathesis' from_fixture does not work with pytest 9, so the app is built at import. Building it
# does no I/O (the engine is lazy); the data dir is created by the fixture below, before any request.
FUZZ_DIR = Path(tempfile.gettempdir()) / f"jamey-fuzz-{uuid.uuid4().hex}"
fuzz_engine = Engine(service_settings(FUZZ_DIR / "data"))
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_engine))


@pytest.fixture(scope="module")
def admin_headers() -> Iterator[dict[str, str]]:
    (FUZZ_DIR / "data").mkdir(parents=True, exist_ok=True)
    fuzz_engine.memory.store("working", "something to find")
    admin = make_persona(fuzz_engine, "fuzz-admin", ("admin",), rate_limit="1000000/minute")
    yield {"Authorization": f"Bearer {admin.key}"}
    fuzz_engine.close()
    shutil.rmtree(FUZZ_DIR, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run, so CI is reproducible
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_with_a_server_error(case: Any, admin_headers: dict[str, str]) -> None:
    case.call_and_validate(
        headers=admin_headers,
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )
