"""Untrusted text renders as text, never as Markdown.

Reproduced: a run parameter holding a backtick closed the run view's code span (``json.dumps``
does not escape backticks) and drew ``[Verify your key](https://evil.example/…)`` as a live link
for the next admin; a run's error, and an alert's name, summary and description (Alertmanager's
API is unauthenticated on loopback), rendered as Markdown too, and any http(s) ``runbook_url`` was
offered as a "Runbook" button.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from amserver import AmServer, start_alertmanager
from helpers import CHROMIUM, CHROMIUM_ARGS, free_port, wait_until
from playwright.sync_api import expect, sync_playwright
from streamlit.testing.v1 import AppTest
from workbench.conftest import open_page, running_workbench, texts

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.observability.alertmanager import AlertmanagerClient
from jamey_engine.runbooks import runs
from jamey_engine.runbooks.links import trusted_link
from workbench_ui import untrusted

PHISH = "https://evil.example/verify"
LINK = f"[Verify your key]({PHISH})"
# What Markdown (with GFM's autolinks) would draw as a link: an unescaped ``](``, or a scheme or
# ``www.`` that no word joiner keeps apart from what precedes it.
LIVE_LINK = re.compile(r"(?<!\\)\]\(|(?<!\u2060)(?i:https?\\?:|www\\?\.)")


def _live_links(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if "evil.example" in line and LIVE_LINK.search(line)]


@pytest.fixture
def am(tmp_path: Path, wb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AmServer]:
    server = start_alertmanager(tmp_path / "am")
    monkeypatch.setenv("ALERTMANAGER_URL", server.url)
    yield server
    server.stop()


def test_an_alert_from_alertmanager_shows_its_text_and_no_foreign_link(
    am: AmServer, admin_app: AppTest
) -> None:
    crafted = {
        "labels": {"alertname": f"Evil{LINK}", "severity": "critical", "job": "jamey"},
        "annotations": {
            "summary": f"Your session expired: `x` {LINK} **now**",
            "description": f"<img src=x> {PHISH} :red[urgent]",
            "runbook_url": PHISH,
        },
    }
    am.post_alerts(crafted)
    wait_until(lambda: AlertmanagerClient(am.url).alerts(), message="Alertmanager holds the alert", every=0.2)
    at = open_page(admin_app, "alerts")
    assert not at.exception, at.exception
    page = texts(at)
    assert "Now: 1 firing" in page
    assert untrusted.text(crafted["annotations"]["summary"]) in page
    assert untrusted.text(crafted["annotations"]["description"]) in page
    assert _live_links(page) == [], _live_links(page)
    buttons = [button.proto.url for button in at.get("link_button")]
    assert PHISH not in buttons, buttons
    assert "not a link to this workbench" in page


def test_a_crafted_link_to_the_runbooks_page_is_named_as_text(admin_app: AppTest) -> None:
    admin_app.query_params["runbook"] = LINK
    at = admin_app.switch_page("pages/runbooks.py").run()
    assert not at.exception, at.exception
    assert "which does not exist" in texts(at)
    assert _live_links(texts(at)) == []


@pytest.mark.browser
@pytest.mark.slow
def test_a_crafted_run_parameter_and_error_show_no_live_link_in_chromium(tmp_path: Path) -> None:
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
    record = runs.create_run(
        engine.db,
        runbook="memory_growth",
        parameters={"days": f"7` {LINK} `"},
        actor="mallory",
        changes_data=False,
    )
    runs.finish_if_active(engine.db, record.id, "failed", error=f"bad value :red[x] {LINK} www.evil.example")
    engine.close()
    with running_workbench(env, tmp_path / "streamlit.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)  # the first run imports pandas, plotly and tantivy
            page.goto(f"{url}/runbooks?run={record.id}")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name=f"Run {record.id}: memory_growth")).to_be_visible()
            error = page.get_by_test_id("stAlertContentError").filter(has_text="bad value")
            expect(error).to_be_visible()
            shown = error.inner_text().replace(untrusted.WORD_JOINER, "")
            assert f"bad value :red[x] {LINK} www.evil.example" in shown
            expect(page.get_by_test_id("stCode").filter(has_text=f'"days": "7` {LINK} `"')).to_be_visible()
            links = page.locator("a[href*='evil.example']")
            found = [links.nth(i).evaluate("a => a.parentElement.outerHTML") for i in range(links.count())]
            assert found == []
        finally:
            browser.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8501/runbooks?runbook=prune_memories&layer=working", True),
        ("HTTP://127.0.0.1:8501/runbooks", True),
        ("https://127.0.0.1:8501/runbooks", False),  # another origin: the scheme differs
        ("http://127.0.0.1:8502/runbooks", False),
        ("http://user:pass@127.0.0.1:8501/runbooks", False),
        ("https://evil.example/verify", False),
        ("javascript:alert(1)", False),
        ("README.md#runbook-backups", False),
        ("http://127.0.0.1:99999/", False),
    ],
)
def test_only_links_to_the_workbench_itself_are_offered(url: str, shown: bool) -> None:
    assert (trusted_link(url, "http://127.0.0.1:8501") is not None) is shown
