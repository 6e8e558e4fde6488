"""Secrets on their way out: no URL's user info, secret setting or absolute path leaves a process.

Reproduced: a mistyped JAMEY_RATE_LIMIT_STORAGE with its Redis password was quoted whole by the
ConfigError the workbench shows before sign-in; PROMETHEUS_URL/ALERTMANAGER_URL credentials were
echoed in "unreachable" errors (and so in notebooks and pages); a runbook run's kernel inherited the
key pepper and the legacy API_KEY; Prometheus, Alertmanager and nginx under `jamey stack` inherited
every Jamey setting with the database URL; a 5xx body named the data dir's absolute path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nbformat
import pytest
from helpers import free_port, make_settings
from notebook_factory import write_notebook
from service.service_support import RunningServer
from streamlit.testing.v1 import AppTest
from workbench.conftest import APP, TIMEOUT, texts

from jamey_engine.config import Settings
from jamey_engine.db import Database
from jamey_engine.engine import Engine
from jamey_engine.errors import ConfigError, InvalidInput, JameyError
from jamey_engine.observability.alertmanager import AlertmanagerClient
from jamey_engine.observability.promql import PromQuery
from jamey_engine.runbooks import launch, runs
from jamey_engine.stack.core import Stack, StackPorts

PASSWORD = "hunter2-s3cret"
PEPPER = "pepper-0123456789abcdef0123456789"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JAMEY_RATE_LIMIT_STORAGE", f"redis//:{PASSWORD}@127.0.0.1:6379/0"),  # the ':' forgotten
        ("JAMEY_RATE_LIMIT_STORAGE", f"reddis://:{PASSWORD}@127.0.0.1:6379/0"),
        ("JAMEY_RATE_LIMIT_STORAGE", f":{PASSWORD}@127.0.0.1:6379/0"),  # the scheme forgotten
        ("PROMETHEUS_URL", f"prometheus://admin:{PASSWORD}@127.0.0.1:9090"),
        ("ALERTMANAGER_URL", f"ftp://admin:{PASSWORD}@127.0.0.1:9093"),
    ],
)
def test_a_bad_setting_names_the_variable_but_not_its_password(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert variable in caught.value.message and "is invalid" in caught.value.message
    assert PASSWORD not in caught.value.message and PASSWORD not in str(caught.value.value)


def test_the_sign_in_page_shows_a_bad_redis_url_without_its_password(
    wb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAMEY_RATE_LIMIT_STORAGE", f"redis//:{PASSWORD}@127.0.0.1:6379/0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert "JAMEY_RATE_LIMIT_STORAGE" in texts(at)
    assert PASSWORD not in texts(at)


def test_a_database_url_that_does_not_parse_is_quoted_without_its_password() -> None:
    with pytest.raises(InvalidInput) as caught:
        Database(f"postgresql://jamey:{PASSWORD}@db.example:notaport/jamey")
    assert PASSWORD not in caught.value.message


def test_unreachable_prometheus_and_alertmanager_errors_hide_the_credentials() -> None:
    closed = free_port()
    prom = PromQuery(f"http://ops:{PASSWORD}@127.0.0.1:{closed}", timeout=2)
    alertmanager = AlertmanagerClient(f"http://ops:{PASSWORD}@127.0.0.1:{closed}", timeout=2)
    try:
        for call in (prom.alerts, alertmanager.alerts):
            with pytest.raises(JameyError) as caught:
                call()
            assert "unreachable at http://ops:***@127.0.0.1" in caught.value.message
            assert PASSWORD not in caught.value.message
        now = datetime.now(UTC)
        link = prom.query_link("error_rate", now - timedelta(hours=1), now)
        assert link.startswith(f"http://127.0.0.1:{closed}/graph?"), link
    finally:
        prom.close()
        alertmanager.close()


def test_a_runbook_kernel_gets_no_pepper_and_no_legacy_key(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(
        notebooks,
        "environment",
        "What the kernel sees",
        'wanted = "JAMEY_KEY_PEPPER,API_KEY,JAMEY_DATA_DIR"  # the variables to look for',
        "import os\nprint({name: name in os.environ for name in wanted.split(',')})",
    )
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    settings = make_settings(
        data, JAMEY_NOTEBOOKS_DIR=str(notebooks), JAMEY_KEY_PEPPER=PEPPER, API_KEY="jmy-legacy"
    )
    engine = Engine(settings)
    try:
        record = launch.start_run(engine, "environment", {}, actor="test")
        finished = launch.wait_for_run(engine, record.id, timeout=180)
        assert finished.status == "succeeded", finished.error
        notebook = nbformat.read(runs.run_dir(settings, record.id) / runs.NOTEBOOK_FILE, as_version=4)
        printed = "".join(
            "".join(output.get("text", "")) for cell in notebook.cells for output in cell.get("outputs", [])
        )
        seen = json.loads(printed.strip().replace("'", '"').replace("True", "true").replace("False", "false"))
        assert seen == {"JAMEY_KEY_PEPPER": False, "API_KEY": False, "JAMEY_DATA_DIR": True}
    finally:
        engine.close()


def test_the_stack_gives_prometheus_alertmanager_and_nginx_no_jamey_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAMEY_KEY_PEPPER", PEPPER)
    monkeypatch.setenv("API_KEY", "jmy-legacy")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    settings = make_settings(data, JAMEY_KEY_PEPPER=PEPPER)
    ports = StackPorts(*(free_port() for _ in range(7)))
    stack = Stack(settings, ports, workbench=True, tls=True, echo=lambda line: None)
    supervisor = stack.prepare()
    envs = {component.name: component.env for component in supervisor.components}
    assert {"prometheus", "alertmanager", "nginx", "service", "workbench"} <= set(envs), sorted(envs)
    for name in ("prometheus", "alertmanager", "nginx"):
        leaked = sorted(k for k in envs[name] if k.startswith("JAMEY_") or k in ("API_KEY", "PROMETHEUS_URL"))
        assert leaked == [], (name, leaked)
    for name in ("service", "workbench"):  # the processes that verify keys keep what they need
        assert envs[name]["JAMEY_KEY_PEPPER"] == PEPPER
        assert envs[name]["JAMEY_DATABASE_URL"] == settings.database_url


def test_a_5xx_body_names_no_absolute_path(serve: Callable[..., RunningServer], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    engine = Engine(make_settings(data))
    key = engine.keys.create("reader", scopes=("memory:read", "memory:write"), actor="test").key
    engine.memory.store("episodic", "a note")
    engine.memory.flush()
    engine.close()
    for meta in data.rglob("meta.json"):
        meta.unlink()
    server = serve(data_dir=data)
    answer = httpx.get(
        f"{server.url}/memories/search",
        params={"layer": "episodic", "q": "note"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code >= 500, answer.text
    assert "meta.json" in answer.json()["error"]  # the message still says what is wrong
    assert str(data) not in answer.text and os.sep + "tmp" not in answer.text, answer.text
    assert str(data) in server.log()  # the operator's log keeps the whole path
