"""The workbench tour: drive the real workbench in Debian's Chromium, sign in, open every page
and take a screenshot of each, so the screenshots in docs/tour/ never go stale silently.

On every page it also checks what a person would notice, and fails naming the page:
- an exception or a traceback on the page;
- a Markdown icon code shown as text (":material/check_circle:" in a table cell);
- a raw ISO timestamp with "+00:00" where the pages show "2026-12-06 14:03:07 UTC".

The data: a fresh data dir with keys, memories in three layers and two backups, the test suite's
Prometheus with 7 days of backfilled metrics (tests/promserver.py), and a real Alertmanager
with two alerts firing and one silenced (tests/amserver.py).

Usage: python tools/screenshots.py [--out DIR]   (`make screenshots` writes docs/tour/)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# (menu title, file name): every page of the menu an admin sees, in its order
PAGES = (
    ("Overview", "overview"),
    ("Dashboards", "dashboards"),
    ("Alerts", "alerts"),
    ("API keys", "keys"),
    ("Memory", "memory"),
    ("Backups", "backups"),
    ("Runbooks", "runbooks"),
)
ICON_CODE = re.compile(r":material/[a-z_]+:")
RAW_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\+00:00")


@dataclass
class Finding:
    page: str
    problem: str


def seed(data_dir: Path) -> str:
    """Keys, memories and backups a tour can show; returns an admin key."""
    from jamey_engine.config import Settings
    from jamey_engine.durations import utcnow
    from jamey_engine.engine import Engine

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        admin = engine.keys.create("tour-admin", scopes=("admin",), actor="tour").key
        engine.keys.create("dashboards-viewer", scopes=("ops:read",), actor="tour")
        engine.keys.create("ingest-app", scopes=("memory:read", "memory:write"), actor="tour")
        now = utcnow()
        for offset, layer in enumerate(("working", "episodic", "semantic")):
            engine.memory.store_batch(
                layer,
                [
                    {
                        "content": f"note {i} about the nightly deploy",
                        "timestamp": now - timedelta(hours=i + offset),
                    }
                    for i in range(200)
                ],
            )
        engine.vault.create()
        engine.vault.create()
        return admin
    finally:
        engine.close()


def alert_scene(alertmanager: Any) -> None:
    """What the Alerts page shows on a bad morning: two alerts firing in a real Alertmanager (as
    Prometheus posts them) and a third one silenced by the on-call person."""
    from datetime import UTC, datetime

    from amserver import alert

    alertmanager.post_alerts(
        alert("JameyBackupFailed", "critical"),
        alert("JameyMemoryIndexTooLarge", "warning", layer="episodic"),
        alert("JameyApiKeyExpiringSoon", "warning", key="ingest-app"),
    )
    now = datetime.now(UTC)
    alertmanager.api(
        "/api/v2/silences",
        {
            "matchers": [
                {"name": "alertname", "value": "JameyApiKeyExpiringSoon", "isRegex": False, "isEqual": True}
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=4)).isoformat(),
            "createdBy": "tour-admin",
            "comment": "rotation planned for this afternoon",
        },
    )


def problems_on(page_name: str, text: str) -> list[Finding]:
    found = []
    if "Traceback" in text or "StreamlitAPIException" in text:
        found.append(Finding(page_name, "an exception is shown"))
    if ICON_CODE.search(text):
        found.append(Finding(page_name, f"an icon code shown as text: {ICON_CODE.search(text).group(0)}"))  # type: ignore[union-attr]
    if RAW_ISO.search(text):
        found.append(Finding(page_name, f"a raw ISO timestamp: {RAW_ISO.search(text).group(0)}"))  # type: ignore[union-attr]
    return found


@contextmanager
def live_workbench(days: float = 7) -> Iterator[tuple[str, str]]:
    """A real workbench on loopback over a seeded data dir, a running `jamey serve` and the test
    suite's Prometheus with ``days`` of backfilled metrics; yields (workbench URL, admin key)."""
    from amserver import start_alertmanager
    from helpers import free_port, wait_for_port
    from promserver import start_prometheus
    from workbench.conftest import running_workbench

    with tempfile.TemporaryDirectory(prefix="jamey-tour-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir(mode=0o700)
        key = seed(data)
        prometheus = start_prometheus(work / "prometheus", days=days)
        service_port = free_port()
        alertmanager = start_alertmanager(work / "alertmanager")
        alert_scene(alertmanager)
        env = {
            **os.environ,
            "JAMEY_DATA_DIR": str(data),
            "PROMETHEUS_URL": prometheus.url,
            "ALERTMANAGER_URL": alertmanager.url,
            "JAMEY_SERVICE_URL": f"http://127.0.0.1:{service_port}",
        }
        for name in (
            "JAMEY_DATABASE_URL",
            "JAMEY_BACKUP_DIR",
            "API_KEY",
            "JAMEY_KEY_PEPPER",
            "JAMEY_MQTT_URL",
        ):
            env.pop(name, None)
        service = subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "serve", "--host", "127.0.0.1", "--port", str(service_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(service_port, timeout=60)
            with running_workbench(env, work / "streamlit.log") as url:
                yield url, key
        finally:
            service.terminate()
            service.wait(timeout=30)
            prometheus.stop()
            alertmanager.stop()


def sign_in(page: Any, url: str, key: str) -> None:
    """Open the workbench at ``url`` and sign in with ``key``; returns on the Overview."""
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def open_page(page: Any, title: str) -> None:
    """Click ``title`` in the sidebar and wait until its heading shows."""
    from playwright.sync_api import expect

    page.get_by_test_id("stSidebar").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title).first).to_be_visible()


def wait_settled(page: Any) -> None:
    """Wait until the page's script run, its fragments and plotly's drawing have all finished."""
    from playwright.sync_api import expect

    # Streamlit marks a page that is still running; wait for it to finish.
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    # placeholders of a fragment still running, then plotly, which draws after the script
    # run ends: wait for every chart's SVG
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
    page.wait_for_function(PLOTS_DRAWN)


PLOTS_DRAWN = (
    "document.querySelectorAll('.js-plotly-plot .main-svg').length >="
    " document.querySelectorAll('[data-testid=stPlotlyChart]').length"
)


def tour(out: Path) -> list[Finding]:
    """Take the tour; write one PNG a page into ``out``; return what it found wrong."""
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    findings: list[Finding] = []
    with live_workbench() as (url, key), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # tall enough for the longest page: Streamlit scrolls inside its own container,
            # so a full-page screenshot is the viewport
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)
            sign_in(page, url, key)
            for title, name in PAGES:
                open_page(page, title)
                page.wait_for_load_state("networkidle")
                wait_settled(page)
                page.wait_for_timeout(1000)
                # text_content, not inner_text: a table's cells live in the grid's
                # accessible shadow table, which is in the DOM but not drawn as text
                findings += problems_on(name, page.get_by_test_id("stMain").text_content() or "")
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        finally:
            browser.close()
    return findings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "tour", help="where the PNGs go")
    args = parser.parse_args(argv)
    findings = tour(args.out)
    for finding in findings:
        print(f"{finding.page}: {finding.problem}", file=sys.stderr)
    print(f"{len(PAGES)} pages, {len(findings)} problem(s); screenshots in {args.out}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
