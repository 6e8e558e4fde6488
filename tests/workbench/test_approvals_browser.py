"""An approve flow in a real browser (Debian's headless Chromium, Playwright) against
`streamlit run app.py`: with JAMEY_APPROVALS=prune, one admin plans a prune on the Memory page,
a second admin approves it with a comment on the Approvals page, and the first applies it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, closed_port
from playwright.sync_api import Browser, Page, expect, sync_playwright

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.plans.store import list_plans

from .conftest import running_workbench


@pytest.fixture
def team_workbench(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Settings]]:
    """A running workbench with JAMEY_APPROVALS=prune, three old memories and two admins' keys."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data),
        "JAMEY_APPROVALS": "prune",
        "PROMETHEUS_URL": f"http://127.0.0.1:{closed_port()}",
        "JAMEY_SERVICE_URL": f"http://127.0.0.1:{closed_port()}",
        "ALERTMANAGER_URL": f"http://127.0.0.1:{closed_port()}",
    }
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_KEY_PEPPER", "JAMEY_MQTT_URL"):
        env.pop(name, None)
    settings = Settings.from_env(env)
    engine = Engine(settings)
    now = utcnow()
    engine.memory.store_batch(
        "working", [{"content": f"old note {i}", "timestamp": now - timedelta(days=60 + i)} for i in range(3)]
    )
    keys = {name: engine.keys.create(name, scopes=("admin",), actor="test").key for name in ("ana", "bo")}
    engine.close()
    with running_workbench(env, tmp_path / "streamlit.log") as url:
        yield url, keys, settings


def signed_in(browser: Browser, url: str, key: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


def go_to(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebar").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()


@pytest.mark.browser
@pytest.mark.slow
def test_a_second_admin_approves_in_the_browser_and_the_planner_applies(
    artifacts: Path, team_workbench: tuple[str, dict[str, str], Settings]
) -> None:
    url, keys, settings = team_workbench
    expect.set_options(timeout=60_000)  # the first run imports pandas, plotly and tantivy
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ana = signed_in(browser, url, keys["ana"])
            go_to(ana, "Memory")
            ana.get_by_role("button", name="Plan the prune").click()
            expect(ana.get_by_text("Waiting for approval by a second key")).to_be_visible()
            engine = Engine(settings)
            try:
                (plan,) = list_plans(engine.db)
                assert plan.status == "pending_approval" and plan.planned_by == "ana"

                bo = signed_in(browser, url, keys["bo"])
                go_to(bo, "Approvals")
                expect(bo.get_by_text(f"Plan {plan.id}")).to_be_visible()
                bo.get_by_label("Comment (required: say why)").fill("checked the cutoff")
                bo.get_by_role("button", name="Approve").click()
                expect(bo.get_by_text(f"Plan {plan.id} (prune) approved")).to_be_visible()
                bo.screenshot(path=str(artifacts / "approvals.png"), full_page=True)

                go_to(ana, "Memory")
                expect(ana.get_by_text("Approved by bo: checked the cutoff")).to_be_visible()
                ana.get_by_label("Type").fill(plan.confirm_phrase)
                ana.get_by_role("button", name="Apply", exact=True).click()
                expect(ana.get_by_text(f"Plan {plan.id} applied (prune")).to_be_visible()
                assert engine.memory.count("working") == 0
            finally:
                engine.close()
        finally:
            browser.close()
