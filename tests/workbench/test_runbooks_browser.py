"""The Runbooks page in a real browser: `streamlit run app.py` and Debian's headless Chromium.

A real Prometheus evaluates the project's alert rules (rendered with this workbench's URL, as
`jamey stack` renders them, and with ``for`` shortened so the test need not wait 10 minutes)
against a target whose episodic index is 1.5 GiB. An operator follows the firing
``JameyMemoryIndexTooLarge`` alert's ``runbook_url``, signs in, runs the dry run, types the phrase,
applies, and finds the run in the history with its rendered output."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, closed_port, start_streamlit, stop_process
from playwright.sync_api import expect, sync_playwright
from promserver import REPO as PROM_REPO
from promserver import launch_prometheus
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, seed_memories

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.runbooks import runs
from jamey_engine.runbooks.links import (
    alert_page_url,
    render_alert_rules,
    runbook_for_alert,
    runbook_page_url,
)


@pytest.fixture
def workbench(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A running workbench on a seeded data dir with one admin key; yields (url, key, data dir)."""
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data),
        "PROMETHEUS_URL": f"http://127.0.0.1:{closed_port()}",
        "PROMETHEUS_TIMEOUT": "1",
        "JAMEY_SERVICE_URL": f"http://127.0.0.1:{closed_port()}",
    }
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_KEY_PEPPER", "JAMEY_MQTT_URL"):
        env.pop(name, None)
    engine = Engine(Settings.from_env(env))
    key = engine.keys.create("browser-admin", scopes=("admin",), actor="test").key
    seed_memories(engine)
    engine.close()
    log_path = tmp_path / "streamlit.log"
    try:
        process, port = start_streamlit(env, log_path)
    except TimeoutError as exc:
        raise AssertionError(
            f"streamlit did not start ({exc}):\n{log_path.read_text(errors='replace')[-3000:]}"
        ) from None
    try:
        yield f"http://127.0.0.1:{port}", key, data
    finally:
        stop_process(process)
        text = (tmp_path / "streamlit.log").read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]


class _Exporter(BaseHTTPRequestHandler):
    """A target whose episodic index is 1.5 GiB (past the 1 GiB warning, under 2 GiB)."""

    def do_GET(self) -> None:
        body = b'memory_index_size_bytes{layer="episodic"} 1610612736\nmemory_index_size_bytes{layer="working"} 1024\n'
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def firing_alert_link(workbench: tuple[str, str, Path], tmp_path: Path) -> Iterator[str]:
    """The runbook_url of the JameyMemoryIndexTooLarge alert firing in a real Prometheus."""
    base = workbench[0]
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in sorted((PROM_REPO / "prometheus" / "rules").glob("*.yml")):
        text = render_alert_rules(path.read_text(), base)
        (rules / path.name).write_text(re.sub(r"for: \d+[smh]", "for: 0s", text))
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    config = f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}/*.yml
scrape_configs:
  - job_name: jamey
    static_configs:
      - targets: ["127.0.0.1:{exporter.server_address[1]}"]
"""
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    url, process = launch_prometheus(workdir, config, workdir / "tsdb")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=5) as answer:  # noqa: S310
                alerts = json.load(answer)["data"]["alerts"]
            firing = [
                a
                for a in alerts
                if a["labels"]["alertname"] == "JameyMemoryIndexTooLarge" and a["state"] == "firing"
            ]
            if firing:
                assert [a["labels"]["layer"] for a in firing] == ["episodic"]
                yield firing[0]["annotations"]["runbook_url"]
                break
            time.sleep(0.5)
        else:
            raise AssertionError("JameyMemoryIndexTooLarge did not fire within 60 s")
    finally:
        process.terminate()
        process.wait(timeout=20)
        exporter.shutdown()


def _documents(data: Path, layer: str) -> int:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data)}))
    try:
        return engine.memory.sizes().layers[layer].documents
    finally:
        engine.close()


@pytest.mark.browser
@pytest.mark.slow
def test_a_firing_alert_opens_the_prune_runbook_and_the_operator_dry_runs_then_applies(
    artifacts: Path, workbench: tuple[str, str, Path], firing_alert_link: str
) -> None:
    base, key, data = workbench
    url = firing_alert_link
    # The rule's link opens the alert's evidence on the Alerts page, whose "Run runbook" opens
    # the page the engine's one mapping names for this alert and its labels (tests/workbench/
    # test_alerts_page.py checks that button); the operator follows it here.
    assert url == alert_page_url(base, "JameyMemoryIndexTooLarge")
    link = runbook_for_alert("JameyMemoryIndexTooLarge", {"layer": "episodic", "severity": "warning"})
    assert link is not None
    url = runbook_page_url(base, link)
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
            page.screenshot(path=str(artifacts / "workbench_runbooks.png"), full_page=True)
        finally:
            browser.close()
    assert _documents(data, "episodic") == NEW_PER_LAYER
