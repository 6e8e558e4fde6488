"""The real workbench (streamlit run app.py) behind the real nginx config, in headless Chromium:
signing in needs Streamlit's websocket through the proxy, and the dashboards must draw under
the workbench's Content-Security-Policy without a single violation."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, closed_port, free_port, start_streamlit
from playwright.sync_api import expect, sync_playwright
from promserver import PromServer

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.nginxconf import NginxSettings

from .conftest import Certificate, start_nginx, stop_nginx

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture
def proxied_workbench(
    tmp_path: Path, certificate: Certificate, backfilled_prometheus: PromServer
) -> Iterator[tuple[str, str]]:
    """Streamlit on a loopback port, nginx in front of it; yields (https URL, admin key)."""
    data = tmp_path / "data"
    data.mkdir()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("JAMEY_") and key != "API_KEY"
    }
    env.update(
        JAMEY_DATA_DIR=str(data),
        PROMETHEUS_URL=backfilled_prometheus.url,
        JAMEY_SERVICE_URL=f"http://127.0.0.1:{closed_port()}",
    )
    engine = Engine(Settings.from_env(env))
    key = engine.keys.create("proxied-admin", scopes=("admin",), actor="test").key
    engine.close()
    log_path = tmp_path / "streamlit.log"
    streamlit, port = start_streamlit(env, log_path)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    settings = NginxSettings(
        server_name="localhost 127.0.0.1",
        listen_address="127.0.0.1",
        http_port=free_port(),
        https_port=free_port(),
        workbench_port=free_port(),
        certificate=str(certificate.cert),
        certificate_key=str(certificate.key),
        service_upstream=f"127.0.0.1:{closed_port()}",
        workbench_upstream=f"127.0.0.1:{port}",
    )
    nginx = None
    try:
        nginx, settings = start_nginx(prefix, settings)
        yield f"https://127.0.0.1:{settings.workbench_port}", key
    finally:
        if nginx is not None:
            stop_nginx(nginx)
        streamlit.terminate()
        try:
            streamlit.wait(timeout=10)
        except subprocess.TimeoutExpired:
            streamlit.kill()
            streamlit.wait()
        text = log_path.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]


@pytest.mark.browser
@pytest.mark.slow
def test_the_workbench_works_through_nginx_with_its_csp(proxied_workbench: tuple[str, str]) -> None:
    url, key = proxied_workbench
    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 1000})
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            responses: list[tuple[str, str | None]] = []
            page.on("response", lambda r: responses.append((r.url, r.headers.get("content-security-policy"))))
            page.goto(url)
            expect(page.get_by_role("heading", name="Jamey ops workbench")).to_be_visible()
            # signing in is a round trip over Streamlit's websocket, through nginx
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            page.get_by_test_id("stSidebar").get_by_role("link", name="Dashboards", exact=True).click()
            expect(page.locator(".js-plotly-plot")).to_have_count(8)
            page.wait_for_timeout(1500)
            violations = page.evaluate("window.__cspViolations")
        finally:
            browser.close()
    # Third-party origins stay blocked by design (the workbench must work on a closed network),
    # and the workbench asks for none (its favicon is served locally).
    assert violations == []
    assert not [line for line in console if "Content Security Policy" in line], console
    document = next(csp for address, csp in responses if address.rstrip("/") == url)
    assert document is not None and "frame-ancestors 'self'" in document
