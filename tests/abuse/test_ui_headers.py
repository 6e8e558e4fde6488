"""The workbench sends its security headers with or without nginx, and the CSP is tight.

Reproduced: under `make run` (`jamey stack`, no nginx) the workbench answered with no
Content-Security-Policy and no frame protection; behind nginx its CSP allowed ``'unsafe-eval'`` and
a websocket to any host (``wss:``). Here the workbench runs as the stack runs it, and Chromium
signs in, opens pages with charts and tables, and must see no CSP violation.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, free_port
from nginx.test_workbench_through_nginx import RECORD_VIOLATIONS
from playwright.sync_api import expect, sync_playwright
from workbench.conftest import running_workbench

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.nginxconf import render
from jamey_engine.security_headers import WORKBENCH_CSP, WORKBENCH_HEADERS
from jamey_engine.stack.core import Stack, StackPorts


def test_the_csp_allows_no_eval_and_no_foreign_websocket() -> None:
    directives = dict(part.strip().split(" ", 1) for part in WORKBENCH_CSP.split(";"))
    assert "'unsafe-eval'" not in WORKBENCH_CSP  # ('wasm-unsafe-eval' allows WebAssembly only)
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'self'"
    assert f'add_header Content-Security-Policy "{WORKBENCH_CSP}" always;' in render()


def test_the_stack_serves_the_workbench_through_its_headers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    stack = Stack(Settings.from_env({"JAMEY_DATA_DIR": str(data)}), StackPorts(), echo=lambda line: None)
    command = stack.commands()["workbench"]
    assert command[4].endswith("workbench_asgi.py"), command


@pytest.mark.browser
@pytest.mark.slow
def test_the_workbench_alone_sends_its_headers_and_works_under_them_in_chromium(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
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
    engine.memory.store_batch("working", ["a note to chart", "another note"])
    engine.close()
    with running_workbench(env, tmp_path / "streamlit.log", script="workbench_asgi.py") as url:
        for path in ("/", "/memory", "/static/does-not-exist.js"):
            answer = httpx.get(f"{url}{path}", timeout=30)
            for name, value in WORKBENCH_HEADERS.items():
                assert answer.headers.get(name) == value, (path, answer.status_code, dict(answer.headers))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(RECORD_VIOLATIONS)
                page = context.new_page()
                page.set_default_timeout(60_000)
                expect.set_options(timeout=60_000)
                violations: list[str] = []
                page.on(
                    "console",
                    lambda message: (
                        violations.append(message.text) if "Content Security Policy" in message.text else None
                    ),
                )
                page.goto(url)
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Sign in").click()  # over the websocket
                expect(page.get_by_role("heading", name="Overview")).to_be_visible()
                page.get_by_test_id("stSidebar").get_by_role("link", name="Memory", exact=True).click()
                expect(page.get_by_role("heading", name="Memory")).to_be_visible()
                expect(page.locator(".js-plotly-plot").first).to_be_visible()  # plotly draws under the CSP
                expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
                page.get_by_test_id("stSidebar").get_by_role("link", name="Dashboards", exact=True).click()
                expect(page.get_by_role("heading", name="Dashboards")).to_be_visible()
                page.get_by_test_id("stSidebar").get_by_role("link", name="API keys", exact=True).click()
                expect(page.get_by_role("heading", name="API keys")).to_be_visible()
                page.wait_for_timeout(1500)
                assert page.evaluate("window.__cspViolations") == []
                assert violations == []
            finally:
                browser.close()
