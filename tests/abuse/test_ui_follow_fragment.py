"""The run-follow fragment on the Runbooks page stops once the session ends.

Reproduced: the fragment reran every second and kept streaming a run's progress to a browser whose
key had been revoked (or whose session had gone idle), since only a whole-page run checked the
session. Here a real workbench and Chromium follow a real slow run while the key is revoked from
another process: the page must fall back to the sign-in form.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, free_port
from notebook_factory import make_test_notebooks
from playwright.sync_api import expect, sync_playwright
from workbench.conftest import running_workbench

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.runbooks import launch, runs


@pytest.mark.browser
@pytest.mark.slow
def test_a_revoked_key_stops_the_run_follow_fragment(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data),
        "JAMEY_NOTEBOOKS_DIR": str(make_test_notebooks(tmp_path / "notebooks")),
        "JAMEY_KEY_CACHE_SECONDS": "0.001",  # a revocation by another process shows at once
        "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "PROMETHEUS_TIMEOUT": "1",
        "JAMEY_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    }
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_KEY_PEPPER", "JAMEY_MQTT_URL"):
        env.pop(name, None)
    engine = Engine(Settings.from_env(env))
    created = engine.keys.create("operator", scopes=("ops:write",), actor="test")
    try:
        with running_workbench(env, tmp_path / "streamlit.log") as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                expect.set_options(timeout=60_000)
                page.goto(f"{url}/runbooks?runbook=slow&seconds=120")
                page.get_by_label("API key").fill(created.key)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("button", name="Run", exact=True).click()
                expect(
                    page.get_by_text("slow", exact=False).and_(page.get_by_text("running")).first
                ).to_be_visible()
                engine.keys.revoke(created.info.id, actor="test")
                # No click, no input: only the fragment's own rerun can notice.
                expect(page.get_by_label("API key")).to_be_visible(timeout=20_000)
                expect(page.get_by_text("revoked")).to_be_visible()
            finally:
                browser.close()
    finally:
        for run in runs.list_runs(engine.db):
            if run.active:
                launch.cancel_run(engine, run.id)
                launch.wait_for_run(engine, run.id, timeout=60)
        engine.close()
