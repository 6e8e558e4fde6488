"""The Alerts page in headless Chromium: an alert's link (?alert=NAME, the rules' runbook_url)
opens its evidence, gathered by a real diagnosis run, beside the alert a real Alertmanager holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from amserver import alert, start_alertmanager
from helpers import CHROMIUM, CHROMIUM_ARGS, free_port, wait_until
from playwright.sync_api import expect, sync_playwright

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_history import Notification, store_notifications
from jamey_engine.observability.alertmanager import AlertmanagerClient
from jamey_engine.runbooks import launch
from jamey_engine.runbooks.alert_evidence import alert_evidence
from jamey_engine.runbooks.auto_diagnosis import start_diagnoses
from jamey_engine.runbooks.links import alert_page_url

from .conftest import running_workbench


@pytest.mark.browser
@pytest.mark.slow
def test_the_alert_link_opens_its_evidence_in_the_browser(tmp_path: Path, artifacts: Path) -> None:
    am = start_alertmanager(tmp_path / "am")
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data),
        "ALERTMANAGER_URL": am.url,
        "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "PROMETHEUS_TIMEOUT": "1",
        "JAMEY_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    }
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_KEY_PEPPER", "JAMEY_MQTT_URL"):
        env.pop(name, None)
    engine = Engine(Settings.from_env(env))
    try:
        key = engine.keys.create("browser-admin", scopes=("admin",), actor="test").key
        am.post_alerts(alert("JameyBackupFailed", "critical"))
        held = wait_until(
            lambda: AlertmanagerClient(am.url).alerts(), message="Alertmanager holds the alert", every=0.2
        )[0]
        notification = Notification(
            held.fingerprint,
            "firing",
            dict(held.labels),
            dict(held.annotations),
            held.starts_at or utcnow(),
            None,
        )
        store_notifications(engine.db, [notification])
        [run_id] = start_diagnoses(engine, [notification])
        assert launch.wait_for_run(engine, run_id, timeout=180).status == "succeeded"
        found = alert_evidence(engine.db, held.fingerprint)
        assert found.verdict and found.gathered_text
        with running_workbench(env, tmp_path / "streamlit.log") as url:
            expect.set_options(timeout=60_000)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1600})
                    page.set_default_timeout(60_000)
                    page.goto(alert_page_url(url, "JameyBackupFailed"))
                    page.get_by_label("API key").fill(key)
                    page.get_by_role("button", name="Sign in").click()
                    expect(
                        page.get_by_text("Showing JameyBackupFailed (opened from its alert).")
                    ).to_be_visible()
                    expect(page.get_by_text(found.gathered_text)).to_be_visible()
                    expect(page.get_by_text(found.verdict)).to_be_visible()
                    expect(page.get_by_role("button", name="Run diagnosis again")).to_be_visible()
                    page.screenshot(path=str(artifacts / "workbench_alert_evidence.png"), full_page=True)
                finally:
                    browser.close()
    finally:
        engine.close()
        am.stop()
