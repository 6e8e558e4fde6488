"""The Alerts page in headless Chromium (Debian's, through Playwright): silence a firing alert
from the page and see it as silenced, with a real Alertmanager behind it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from amserver import AmServer, alert, start_alertmanager
from helpers import CHROMIUM, CHROMIUM_ARGS, closed_port, wait_until
from playwright.sync_api import expect, sync_playwright

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.observability.alertmanager import AlertmanagerClient

from .conftest import running_workbench


@pytest.fixture
def alerts_workbench(tmp_path: Path) -> Iterator[tuple[str, str, AmServer]]:
    am = start_alertmanager(tmp_path / "am")
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data),
        "ALERTMANAGER_URL": am.url,
        "PROMETHEUS_URL": f"http://127.0.0.1:{closed_port()}",
        "PROMETHEUS_TIMEOUT": "1",
        "JAMEY_SERVICE_URL": f"http://127.0.0.1:{closed_port()}",
    }
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_KEY_PEPPER", "JAMEY_MQTT_URL"):
        env.pop(name, None)
    engine = Engine(Settings.from_env(env))
    key = engine.keys.create("browser-admin", scopes=("admin",), actor="test").key
    engine.close()
    try:
        with running_workbench(env, tmp_path / "streamlit.log") as url:
            yield url, key, am
    finally:
        am.stop()


@pytest.mark.browser
@pytest.mark.slow
def test_an_operator_silences_a_firing_alert_from_the_page(
    artifacts: Path,
    alerts_workbench: tuple[str, str, AmServer],
) -> None:
    url, key, am = alerts_workbench
    am.post_alerts(alert("JameyBackupFailed", "critical", layer="working"))
    client = AlertmanagerClient(am.url)
    wait_until(lambda: client.alerts(), message="the alert reaches Alertmanager", every=0.2)
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(30_000)
            page.goto(f"{url}/alerts")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
            expect(page.get_by_text("Now: 1 firing, 0 pending")).to_be_visible()
            page.get_by_role("button", name="Silence…").click()
            expect(page.get_by_label("Matchers")).to_have_value(
                "alertname=JameyBackupFailed\njob=jamey\nlayer=working\nseverity=critical"
            )
            expect(
                page.get_by_text("These matchers catch 1 current alert(s): JameyBackupFailed.")
            ).to_be_visible()
            page.get_by_label("Comment (required)").fill("restore in progress")
            page.get_by_label("Comment (required)").press("Enter")
            page.get_by_role("button", name="Silence", exact=True).click()
            expect(page.get_by_text("Silenced 1 alert(s) until")).to_be_visible()
            wait_until(
                lambda: [a for a in client.alerts() if a.state == "suppressed"],
                message="suppressed in Alertmanager",
                every=0.2,
            )
            page.get_by_test_id("stSidebar").get_by_role(
                "link", name="Alerts", exact=True
            ).click()  # a fresh read
            expect(page.get_by_text("silenced by browser-admin until").first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(artifacts / "workbench_alerts.png"), full_page=True)
        finally:
            browser.close()
    (silence,) = client.silences()
    assert silence.created_by == "browser-admin" and silence.comment == "restore in progress"
