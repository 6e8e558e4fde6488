"""The workbench in a real browser: `streamlit run app.py` in a subprocess and Debian's headless
Chromium driven by Playwright. Signs in, creates a key, sees it listed, opens the dashboards
(with a real Prometheus behind them) and saves screenshots to a temporary dir (the artifacts fixture)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, closed_port
from playwright.sync_api import Page, expect, sync_playwright
from promserver import PromServer

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

from .conftest import running_workbench


@pytest.fixture
def workbench(tmp_path: Path, backfilled_prometheus: PromServer) -> Iterator[tuple[str, str, Path]]:
    """A running workbench on a fresh data dir with one admin key; yields (url, key, data dir)."""
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data),
        "PROMETHEUS_URL": backfilled_prometheus.url,
        "JAMEY_SERVICE_URL": f"http://127.0.0.1:{closed_port()}",
    }
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_KEY_PEPPER", "JAMEY_MQTT_URL"):
        env.pop(name, None)
    engine = Engine(Settings.from_env(env))
    key = engine.keys.create("browser-admin", scopes=("admin",), actor="test").key
    engine.memory.store_batch("working", ["a note for the screenshot"])
    engine.close()
    with running_workbench(env, tmp_path / "streamlit.log") as url:
        yield url, key, data


def go_to(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebar").get_by_role("link", name=title, exact=True).click()


def menu_links(page: Page) -> list[str]:
    """The page titles the sidebar menu offers."""
    return [text.strip() for text in page.get_by_test_id("stSidebar").get_by_role("link").all_inner_texts()]


@pytest.mark.browser
@pytest.mark.slow
def test_an_admin_signs_in_creates_a_key_and_opens_the_dashboards(
    artifacts: Path, workbench: tuple[str, str, Path]
) -> None:
    url, key, data = workbench
    expect.set_options(timeout=30_000)  # the first run imports pandas, plotly and tantivy
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            expect(page.get_by_role("heading", name="Jamey ops workbench")).to_be_visible()
            expect(page.get_by_test_id("stSidebar").get_by_role("link")).to_have_count(0)  # no menu yet

            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(page.get_by_text("Signed in as")).to_be_visible()

            go_to(page, "API keys")
            expect(page.get_by_role("heading", name="API keys")).to_be_visible()
            page.get_by_role("textbox", name="Name", exact=True).fill("browser-bot")
            page.get_by_role("button", name="Create key").click()
            expect(page.get_by_text("Created key 'browser-bot'")).to_be_visible()
            shown = page.get_by_test_id("stCode").first.inner_text().strip()
            assert shown.startswith("jmy_"), shown
            expect(page.get_by_text("Keys (2)")).to_be_visible()
            # the grid draws on a canvas; its accessible shadow table holds the cells' text
            keys_table = page.get_by_test_id("stDataFrame").first
            cells = keys_table.locator('td[role="gridcell"]', has_text=re.compile("^browser-bot$"))
            expect(cells).to_have_count(1)
            page.get_by_test_id("stDataFrame").first.hover()
            page.screenshot(path=str(artifacts / "workbench_keys.png"), full_page=True)

            go_to(page, "Dashboards")
            expect(page.get_by_role("heading", name="Dashboards")).to_be_visible()
            expect(page.locator(".js-plotly-plot")).to_have_count(8, timeout=60_000)
            expect(page.get_by_text("Prometheus unreachable")).to_have_count(0)
            expect(page.get_by_role("link", name="Open in Prometheus")).to_have_count(8)
            assert "/dashboards" in page.url and "range=1h" in page.url, page.url
            page.set_viewport_size({"width": 1400, "height": 2600})
            page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
            page.screenshot(path=str(artifacts / "workbench_dashboards.png"), full_page=True)
        finally:
            browser.close()

    check = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data)}))
    try:
        created = next(k for k in check.keys.list() if k.name == "browser-bot")
        assert check.keys.verify(shown).id == created.id
        assert any(
            e["key_name"] == "browser-bot" and e["actor"] == "browser-admin" for e in check.keys.audit()
        )
    finally:
        check.close()


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


@pytest.mark.browser
@pytest.mark.slow
def test_a_viewer_sees_dashboards_but_no_keys_page_and_an_operator_runs_a_prune_dry_run(
    artifacts: Path,
    workbench: tuple[str, str, Path],
) -> None:
    url, _, data = workbench
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data)}))
    try:
        viewer = engine.keys.create("viewer", scopes=("ops:read",), actor="test").key
        operator = engine.keys.create("operator", scopes=("ops:write",), actor="test").key
    finally:
        engine.close()
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            sign_in(page, url, viewer)
            expect(page.get_by_test_id("stSidebar").get_by_role("link", name="Dashboards")).to_be_visible()
            assert "API keys" not in menu_links(page), menu_links(page)
            go_to(page, "Dashboards")
            expect(page.locator(".js-plotly-plot")).to_have_count(8, timeout=60_000)
            page.goto(f"{url}/keys")  # a deep link beyond the key's scope, opened afresh
            page.get_by_label("API key").fill(viewer)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("This page needs the admin scope")).to_be_visible()
            expect(page.get_by_role("heading", name="API keys")).to_have_count(0)
            expect(page.get_by_text("Traceback")).to_have_count(0)

            operator_page = browser.new_page(viewport={"width": 1400, "height": 1000})
            operator_page.set_default_timeout(30_000)
            sign_in(operator_page, url, operator)
            go_to(operator_page, "Memory")
            operator_page.get_by_role("button", name="Plan the prune").click()
            # The plan (nothing old enough: nothing to delete) waits for its phrase; nothing changed.
            expect(operator_page.get_by_label("Type")).to_be_visible()
            operator_page.screenshot(path=str(artifacts / "workbench_operator_dry_run.png"), full_page=True)
        finally:
            browser.close()
