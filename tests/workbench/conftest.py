"""Workbench fixtures: the app under AppTest on a temporary data dir with a real SQLite
database and real indexes, and personas' keys (admin, reader)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import streamlit as st
from helpers import closed_port, start_streamlit, stop_process
from promserver import PromServer
from streamlit.testing.v1 import AppTest

from jamey_engine.engine import Engine

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
TIMEOUT = 60


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where browser tests save their screenshots: a temporary dir (pytest prints no path;
    look under ``pytest --basetemp=DIR``), never a fixed path in the repository."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture
def wb_env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The app's environment: this test's data dir, a tiny key cache (so a revocation by
    another process shows at once), and Prometheus, Alertmanager and the service on closed ports."""
    monkeypatch.setenv("JAMEY_DATA_DIR", str(data_dir))
    monkeypatch.setenv("JAMEY_KEY_CACHE_SECONDS", "0.001")
    monkeypatch.setenv("PROMETHEUS_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("PROMETHEUS_TIMEOUT", "2")
    monkeypatch.setenv("ALERTMANAGER_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("ALERTMANAGER_TIMEOUT", "2")
    monkeypatch.setenv("JAMEY_SERVICE_URL", f"http://127.0.0.1:{closed_port()}")
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_KEY_PEPPER", "JAMEY_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield data_dir
    st.cache_data.clear()
    st.cache_resource.clear()  # closes the app's engines (on_release)


@pytest.fixture
def admin_key(engine: Engine, wb_env: Path) -> str:
    return engine.keys.create("ops-admin", scopes=("admin",), actor="test").key


@pytest.fixture
def reader_key(engine: Engine, wb_env: Path) -> str:
    return engine.keys.create("reader-bot", scopes=("memory:read",), actor="test").key


def sign_in(at: AppTest, key: str) -> AppTest:
    """Submit the sign-in form with ``key``."""
    at.text_input(key="signin_key").input(key)
    at.button(key="FormSubmitter:signin-Sign in").click()
    return at.run()


@pytest.fixture
def app(wb_env: Path) -> AppTest:
    """The workbench, run once: the sign-in page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    return at.run()


@pytest.fixture
def admin_app(app: AppTest, admin_key: str) -> AppTest:
    """The workbench signed in with the admin key."""
    sign_in(app, admin_key)
    assert not app.exception, app.exception
    return app


def texts(at: AppTest) -> str:
    """Every markdown, caption, info, success, warning and error text on the page, joined."""
    parts: list[str] = []
    for kind in (
        "title",
        "subheader",
        "markdown",
        "caption",
        "info",
        "success",
        "warning",
        "error",
        "toast",
        "code",
    ):
        parts.extend(str(el.value) for el in getattr(at, kind))
    return "\n".join(parts)


def open_page(at: AppTest, name: str) -> AppTest:
    return at.switch_page(f"pages/{name}.py").run()


Opener = Callable[[str], AppTest]


@pytest.fixture
def prom_env(wb_env: Path, backfilled_prometheus: PromServer, monkeypatch: pytest.MonkeyPatch) -> PromServer:
    """The app pointed at the session's real Prometheus with 7 days of Scenario data."""
    monkeypatch.setenv("PROMETHEUS_URL", backfilled_prometheus.url)
    monkeypatch.setenv("PROMETHEUS_TIMEOUT", "10")
    return backfilled_prometheus


@contextmanager
def running_workbench(env: dict[str, str], log_path: Path, script: str = "app.py") -> Iterator[str]:
    """`streamlit run <script>` (app.py, or workbench_asgi.py: app.py behind its security headers) on
    a free loopback port with ``env``; yields its URL once it listens, and stops it afterwards,
    failing if its log (``log_path``) holds a traceback."""
    try:
        process, port = start_streamlit(env, log_path, script=script)
    except TimeoutError as exc:
        raise AssertionError(
            f"streamlit did not start ({exc}):\n{log_path.read_text(errors='replace')[-3000:]}"
        ) from None
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


def figures(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as their JSON specs."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def apply_plan(at: AppTest, slot: str, phrase: str) -> AppTest:
    """Type ``phrase`` into the plan component's form of ``slot`` and press Apply."""
    at.text_input(key=f"plan_phrase_{slot}").input(phrase)
    at.button(key=f"FormSubmitter:plan_apply_{slot}-Apply").click()
    return at.run()
