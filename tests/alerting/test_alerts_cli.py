"""`jamey alerts`: silence, silences, expire, list and history against a real Alertmanager
(and a real Prometheus for list); one-line errors and exit 1 when Alertmanager is down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from amserver import AmServer, alert, start_alertmanager
from click.testing import CliRunner, Result
from helpers import closed_port, wait_until
from promserver import PromServer

from jamey_engine import oplog
from jamey_engine.cli import cli
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_history import Notification, store_notifications
from jamey_engine.observability.alertmanager import AlertmanagerClient


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AmServer]:
    server = start_alertmanager(tmp_path_factory.mktemp("am-cli"))
    yield server
    server.stop()


def jamey(data_dir: Path, *args: str, am_url: str, prom_url: str | None = None) -> Result:
    env = {
        "JAMEY_DATA_DIR": str(data_dir),
        "ALERTMANAGER_URL": am_url,
        "ALERTMANAGER_TIMEOUT": "3",
        "PROMETHEUS_URL": prom_url or f"http://127.0.0.1:{closed_port()}",
        "JAMEY_DATABASE_URL": "",
    }
    return CliRunner().invoke(cli, list(args), env=env)


def test_silence_list_and_expire_from_the_cli(am: AmServer, data_dir: Path, engine: Engine) -> None:
    made = jamey(
        data_dir, "alerts", "silence", "--match", "alertname=JameyBackupFailed", "--match", "layer=working",
        "--for", "2h", "--comment", "restore running", am_url=am.url,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    silence_id = made.output.strip()
    assert AlertmanagerClient(am.url).silence(silence_id).created_by == "cli"
    listed = jamey(data_dir, "alerts", "silences", "--json", am_url=am.url)
    assert listed.exit_code == 0, listed.output
    mine = next(s for s in json.loads(listed.output) if s["id"] == silence_id)
    assert mine["matchers"] == ["alertname=JameyBackupFailed", "layer=working"]
    assert mine["comment"] == "restore running" and mine["state"] == "active"
    expired = jamey(data_dir, "alerts", "expire", silence_id, am_url=am.url)
    assert expired.exit_code == 0, expired.output
    assert silence_id not in jamey(data_dir, "alerts", "silences", am_url=am.url).output
    assert [op["actor"] for op in oplog.recent_operations(engine.db, kind="silence")] == ["cli", "cli"]


def test_bad_input_is_one_line_with_exit_2(am: AmServer, data_dir: Path) -> None:
    for args, message in (
        (["--match", "oops", "--for", "2h", "--comment", "c"], "is not NAME=VALUE"),
        (["--match", "a=b", "--for", "forever", "--comment", "c"], "--for 'forever' is not a duration"),
        (["--match", "a=b", "--for", "2h", "--comment", " "], "needs a comment"),
    ):
        result = jamey(data_dir, "alerts", "silence", *args, am_url=am.url)
        assert result.exit_code == 2, result.output
        assert message in result.output and result.output.count("\n") == 1, result.output
    unknown = jamey(data_dir, "alerts", "expire", "00000000-0000-0000-0000-000000000000", am_url=am.url)
    assert unknown.exit_code == 1 and "no silence" in unknown.output


def test_alertmanager_down_is_a_clear_message_and_exit_1(data_dir: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    for args in (["silences"], ["list"], ["expire", "00000000-0000-0000-0000-000000000000"]):
        result = jamey(data_dir, "alerts", *args, am_url=url)
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"error: Alertmanager unreachable at {url}"), result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_list_joins_prometheus_and_alertmanager(
    am: AmServer, data_dir: Path, backfilled_prometheus: PromServer
) -> None:
    am.post_alerts(alert("JameyCliSilenced"))
    client = AlertmanagerClient(am.url)
    wait_until(
        lambda: any(a.alertname == "JameyCliSilenced" for a in client.alerts()),
        message="the alert",
        every=0.2,
    )
    made = jamey(
        data_dir, "alerts", "silence", "--match", "alertname=JameyCliSilenced", "--for", "1h",
        "--comment", "known", am_url=am.url,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    wait_until(
        lambda: any(a.state == "suppressed" for a in client.alerts() if a.alertname == "JameyCliSilenced"),
        message="suppressed",
        every=0.2,
    )
    wait_until(
        lambda: backfilled_prometheus.query('ALERTS{alertname="JameyHighErrorRate"}'),
        message="Prometheus alerts",
        every=0.2,
    )
    result = jamey(data_dir, "alerts", "list", "--json", am_url=am.url, prom_url=backfilled_prometheus.url)
    assert result.exit_code == 0, result.output
    rows = {row["alertname"]: row for row in json.loads(result.output)}
    assert rows["JameyCliSilenced"]["alertmanager_state"] == "suppressed"
    assert rows["JameyCliSilenced"]["status"].startswith("silenced by cli until")
    assert "JameyHighErrorRate" in rows, "Prometheus' own alerts (pending or firing) are there too"
    text = jamey(data_dir, "alerts", "list", am_url=am.url, prom_url=backfilled_prometheus.url)
    assert "JameyCliSilenced" in text.output and "silenced by cli" in text.output


def test_history_is_empty_then_lists(data_dir: Path, engine: Engine) -> None:
    empty = jamey(data_dir, "alerts", "history", "--days", "3", am_url="http://127.0.0.1:9")
    assert empty.exit_code == 0 and "no alert notification in the last 3 days" in empty.output
    start = utcnow() - timedelta(hours=2)
    labels = {"alertname": "JameyBackupFailed", "severity": "critical", "layer": "working"}
    store_notifications(
        engine.db,
        [
            Notification("fp-cli", "firing", labels, {}, start, None),
            Notification("fp-cli", "resolved", labels, {}, start, start + timedelta(minutes=45)),
        ],
    )
    listed = jamey(data_dir, "alerts", "history", "--days", "3", am_url="http://127.0.0.1:9")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert [line.split()[2:6] for line in lines[:2]] == [
        ["resolved", "JameyBackupFailed", "critical", "working"],
        ["firing", "JameyBackupFailed", "critical", "working"],
    ], listed.output
    assert lines[-1].split() == ["JameyBackupFailed", "1", "1", "45m", "45m"], listed.output
    as_json = json.loads(jamey(data_dir, "alerts", "history", "--json", am_url="http://127.0.0.1:9").output)
    assert [row["status"] for row in as_json["notifications"]] == ["resolved", "firing"]
    assert as_json["alerts"][0]["mean_resolve_seconds"] == 45 * 60
