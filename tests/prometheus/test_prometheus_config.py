"""Prometheus and Alertmanager configuration: checked and unit-tested by the real tools.

promtool and amtool run here (a missing binary fails, never skips); a real Alertmanager
shows the routing and the inhibition at work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from helpers import free_port, wait_until, wait_until_listening
from promserver import REPO, require_binary

from jamey_engine.runbooks.alert_guides import GUIDES
from jamey_engine.runbooks.catalog import load_catalog
from jamey_engine.runbooks.links import (
    ALERT_LINKS,
    ALERTS_PAGE,
    DEFAULT_WORKBENCH_URL,
    alert_page_url,
    render_alert_rules,
    runbook_for_alert,
)

PROMETHEUS_DIR = REPO / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


# --- promtool ----------------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config() -> None:
    result = run(require_binary("promtool"), "check", "config", "prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    result = run(require_binary("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    assert len(UNIT_TESTS) >= 3
    result = run(require_binary("promtool"), "test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout


def test_the_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    """The promtool tests can fail: raise the error-rate threshold and they do."""
    rules = tmp_path / "rules"
    tests = tmp_path / "tests"
    shutil.copytree(PROMETHEUS_DIR / "rules", rules)
    shutil.copytree(PROMETHEUS_DIR / "tests", tests)
    alerts = rules / "alerts.yml"
    text = alerts.read_text()
    assert 'ratio_rate5m{job="jamey"} > 0.05' in text
    alerts.write_text(text.replace('ratio_rate5m{job="jamey"} > 0.05', 'ratio_rate5m{job="jamey"} > 0.5'))
    result = run(require_binary("promtool"), "test", "rules", str(tests / "alerts_test.yml"), cwd=tmp_path)
    assert result.returncode != 0
    assert "ten percent 5xx fires the warning only" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    fires: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    silent.add(check["alertname"])
                for alert in expected:
                    fires.add((check["alertname"], alert["exp_labels"]["severity"]))
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert rules - fires == set(), "alerts without a unit test where they fire"
    assert {name for name, _severity in rules} - silent == set(), (
        "alerts without a unit test where they stay silent"
    )


def test_every_alert_has_a_severity_summary_description_and_runbook() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) >= 13
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, rule["alert"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]


def test_every_runbook_link_opens_its_alert_s_evidence_in_the_workbench() -> None:
    for rule in alert_rules():
        target = rule["annotations"]["runbook_url"]
        assert target == alert_page_url(DEFAULT_WORKBENCH_URL, rule["alert"]), (rule["alert"], target)
        parts = urlsplit(target)
        assert parts.path == f"/{ALERTS_PAGE}" and parse_qs(parts.query) == {"alert": [rule["alert"]]}


def test_every_alert_has_a_guide_a_docs_page_and_its_remediation_is_a_runbook() -> None:
    catalog = load_catalog(REPO / "notebooks")
    missing = []
    for rule in alert_rules():
        if ALERT_LINKS[rule["alert"]].guide not in GUIDES:
            missing.append(f"{rule['alert']}: guide {ALERT_LINKS[rule['alert']].guide}")
        if not (REPO / "docs" / "alerts" / f"{rule['alert']}.md").is_file():
            missing.append(f"{rule['alert']}: no docs/alerts/{rule['alert']}.md (run `make docs`)")
        link = runbook_for_alert(rule["alert"], {"layer": "episodic"})
        assert link is None or link.runbook in catalog, rule["alert"]
    assert not missing, "\n".join(sorted(set(missing)))


def test_rendering_the_rules_moves_the_workbench_links_to_the_configured_workbench() -> None:
    text = (PROMETHEUS_DIR / "rules" / "alerts.yml").read_text()
    rendered = render_alert_rules(text, "https://ops.example.org/wb/")
    assert f"{DEFAULT_WORKBENCH_URL}/alerts" not in rendered
    assert "https://ops.example.org/wb/alerts?alert=JameyMemoryIndexTooLarge" in rendered
    assert rendered.replace("https://ops.example.org/wb", DEFAULT_WORKBENCH_URL) == text


def test_the_prometheus_config_scrapes_the_service_and_itself_with_relative_rule_paths() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["jamey"]["static_configs"][0]["targets"] == ["127.0.0.1:3000"]
    assert jobs["jamey"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["127.0.0.1:9090"]
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


def test_every_receiver_delivers_to_the_jamey_webhook_with_a_credentials_file() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        hooks = receiver["webhook_configs"]
        assert any(h["url"] == "http://127.0.0.1:3000/alertmanager/webhook" for h in hooks), receiver["name"]
        for hook in hooks:
            assert hook["send_resolved"] is True
            auth = hook["http_config"]["authorization"]
            assert auth["credentials_file"].endswith("alertmanager-webhook.credentials")
            assert "credentials" not in auth, "never a key in the config itself"


# --- amtool ------------------------------------------------------------------------------------


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run(require_binary("amtool"), "check-config", "prometheus/alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=JameyHighErrorRate", "severity=critical"], "critical"),
        (["alertname=JameyHighErrorRate", "severity=warning"], "warning"),
        (["alertname=JameyMemoryIndexTooLarge", "severity=critical", "layer=semantic"], "critical"),
        (["alertname=SomethingElse"], "warning"),
    ],
)
def test_the_routing_tree_sends_each_severity_to_its_receiver(labels: list[str], receiver: str) -> None:
    amtool = require_binary("amtool")
    result = run(
        amtool, "config", "routes", "test", "--config.file=prometheus/alertmanager.yml",
        f"--verify.receivers={receiver}", *labels,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_the_routing_test_fails_for_the_wrong_receiver() -> None:
    result = run(
        require_binary("amtool"), "config", "routes", "test", "--config.file=prometheus/alertmanager.yml",
        "--verify.receivers=warning", "severity=critical",
    )  # fmt: skip
    assert result.returncode != 0


# --- a real Alertmanager -----------------------------------------------------------------------


class _Webhook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """The project's alertmanager.yml, webhooks pointed at a local receiver and short timers."""
    binary = require_binary("alertmanager", "prometheus-alertmanager")
    received: list[tuple[str, dict[str, Any]]] = []
    webhook = ThreadingHTTPServer(("127.0.0.1", 0), type("Hook", (_Webhook,), {"received": received}))
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    config = yaml.safe_load((PROMETHEUS_DIR / "alertmanager.yml").read_text())
    credentials = tmp_path / "webhook.credentials"
    credentials.write_text("jmy_test\n")
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            # One path per receiver, so the test sees which receiver delivered.
            hook["url"] = f"http://127.0.0.1:{webhook.server_address[1]}/alerts/{receiver['name']}"
            hook["http_config"]["authorization"]["credentials_file"] = str(credentials)
    config["route"].update(group_wait="1s", group_interval="1s")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={path}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(process, port, timeout=30)  # none of another worker's servers
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):  # noqa: S310 (our http URL)
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "alertmanager.log").read_text()
                time.sleep(0.2)
        yield url, received
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        webhook.shutdown()
        webhook.server_close()


def _api(url: str, path: str, payload: object | None = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{url}{path}", data=data, headers=headers)  # noqa: S310 (our http URL)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (our http URL)
        body = response.read()
    return json.loads(body) if body else None


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "job": "jamey", **labels},
        "annotations": {"summary": f"{name} {severity}"},
    }


def test_a_real_alertmanager_inhibits_the_warning_of_a_firing_critical(
    alertmanager: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    url, received = alertmanager
    _api(
        url,
        "/api/v2/alerts",
        [
            _alert("JameyHighErrorRate", "warning"),
            _alert("JameyHighErrorRate", "critical"),
            _alert("JameyHighMemoryUsage", "warning"),  # no critical of its own: delivered
        ],
    )
    wait_until(
        lambda: {path for path, _ in received} == {"/alerts/critical", "/alerts/warning"},
        20,
        "both receivers' deliveries",
    )
    # Where each alert goes is Alertmanager's own record (no waiting for a stray delivery): the
    # critical to "critical" only, each warning to "warning" only, the inhibited one sent nowhere.
    routed = {
        (alert["labels"]["alertname"], alert["labels"]["severity"]): {r["name"] for r in alert["receivers"]}
        for alert in _api(url, "/api/v2/alerts")
    }
    assert routed == {
        ("JameyHighErrorRate", "critical"): {"critical"},
        ("JameyHighErrorRate", "warning"): {"warning"},
        ("JameyHighMemoryUsage", "warning"): {"warning"},
    }

    delivered = {(path, alert["labels"]["alertname"], alert["labels"]["severity"]) for path, body in received for alert in body["alerts"]}  # fmt: skip
    assert delivered == {
        ("/alerts/critical", "JameyHighErrorRate", "critical"),
        ("/alerts/warning", "JameyHighMemoryUsage", "warning"),
    }
    states = {
        (alert["labels"]["alertname"], alert["labels"]["severity"]): alert["status"]
        for alert in _api(url, "/api/v2/alerts")
    }
    assert states[("JameyHighErrorRate", "warning")]["state"] == "suppressed"
    assert states[("JameyHighErrorRate", "warning")]["inhibitedBy"]
    assert states[("JameyHighErrorRate", "critical")]["state"] == "active"
    assert states[("JameyHighMemoryUsage", "warning")]["state"] == "active"


def test_a_critical_of_another_layer_does_not_inhibit_the_warning(
    alertmanager: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    url, _received = alertmanager
    _api(
        url,
        "/api/v2/alerts",
        [
            _alert("JameyMemoryIndexTooLarge", "critical", layer="semantic"),
            _alert("JameyMemoryIndexTooLarge", "warning", layer="episodic"),
            _alert("JameyMemoryIndexTooLarge", "warning", layer="semantic"),
        ],
    )
    deadline = time.monotonic() + 10
    while True:
        states = {
            (alert["labels"]["layer"], alert["labels"]["severity"]): alert["status"]["state"]
            for alert in _api(url, "/api/v2/alerts")
        }
        if states.get(("semantic", "warning")) == "suppressed" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert states == {
        ("semantic", "critical"): "active",
        ("semantic", "warning"): "suppressed",
        ("episodic", "warning"): "active",
    }
