"""The Runbooks page in a real browser: `streamlit run app.py` and Debian's headless Chromium.

An operator follows the link an alert gives (``runbook_page_url(runbook_for_alert(...))``, the
same function the alert rules and the Alerts page use), signs in, runs the dry run, types the
phrase, applies, and finds the run in the history with its rendered output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, free_port, wait_for_port
from playwright.sync_api import expect, sync_playwright
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, seed_memories

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.runbooks import runs
from jamey_engine.runbooks.links import runbook_for_alert, runbook_page_url

from .conftest import REPO

ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture
def workbench(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A running workbench on a seeded data dir with one admin key; yields (url, key, data dir)."""
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data),
        "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "PROMETHEUS_TIMEOUT": "1",
        "JAMEY_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    }
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_KEY_PEPPER", "JAMEY_MQTT_URL"):
        env.pop(name, None)
    engine = Engine(Settings.from_env(env))
    key = engine.keys.create("browser-admin", scopes=("admin",), actor="test").key
    seed_memories(engine)
    engine.close()
    port = free_port()
    log = (tmp_path / "streamlit.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}", key, data
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        text = (tmp_path / "streamlit.log").read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]


def _documents(data: Path, layer: str) -> int:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data)}))
    try:
        return engine.memory.sizes().layers[layer].documents
    finally:
        engine.close()


@pytest.mark.browser
@pytest.mark.slow
def test_an_alert_link_opens_the_prune_runbook_and_the_operator_dry_runs_then_applies(
    workbench: tuple[str, str, Path],
) -> None:
    base, key, data = workbench
    link = runbook_for_alert("JameyMemoryIndexTooLarge", {"layer": "episodic", "severity": "warning"})
    assert link is not None
    url = runbook_page_url(base, link)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=60_000)  # a loaded machine starts a kernel slowly
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Runbooks")).to_be_visible()
            assert "runbook=prune_memories" in page.url and "layer=episodic" in page.url, page.url
            layer = page.get_by_test_id("stSelectbox").filter(has_text="layer")
            expect(layer).to_match_aria_snapshot('- combobox "layer": episodic')

            page.get_by_role("button", name="Dry run").click()
            expect(page.get_by_text("To apply, type the confirm phrase exactly")).to_be_visible(
                timeout=180_000
            )
            planned = runs.list_runs(Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data)})).db)[0]
            assert planned.status == "succeeded" and planned.summary is not None
            phrase = planned.summary["confirm_phrase"]
            assert phrase.startswith(f"prune {OLD_PER_LAYER} memories")
            expect(page.get_by_text(phrase).first).to_be_visible()
            assert _documents(data, "episodic") == OLD_PER_LAYER + NEW_PER_LAYER

            page.get_by_label("Confirm phrase").fill(phrase)
            page.get_by_label("Confirm phrase").press("Enter")
            page.get_by_role("button", name="Apply").click()
            expect(page.get_by_text(f"Pruned {OLD_PER_LAYER} memories").first).to_be_visible(timeout=180_000)
            expect(page.get_by_text(re.compile(r"^succeeded · by browser-admin")).first).to_be_visible()
            history = page.get_by_test_id("stDataFrame").first
            expect(history.locator('td[role="gridcell"]', has_text=re.compile("^succeeded$"))).to_have_count(
                2
            )
            expect(page.get_by_role("button", name="Download HTML")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "workbench_runbooks.png"), full_page=True)
        finally:
            browser.close()
    assert _documents(data, "episodic") == NEW_PER_LAYER
