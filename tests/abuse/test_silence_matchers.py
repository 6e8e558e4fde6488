"""Silences cannot be made to catch everything, nor their regexes to freeze the interpreter.

Matchers are evaluated with RE2's semantics, anchored as Alertmanager anchors them (checked
against what a real Alertmanager suppresses); a regex with catastrophic backtracking under
Python's ``re`` evaluates at once; a value past MAX_MATCHER_CHARS is refused naming the matcher;
and matchers catching every alert name (every rule in prometheus/rules/alerts.yml and a made-up
name, all posted to a real Alertmanager) are refused by the engine function every door calls, so
nothing reaches Alertmanager.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from amserver import AmServer, alert, start_alertmanager
from click.testing import CliRunner
from helpers import free_port, wait_until

from jamey_engine import oplog
from jamey_engine.cli import cli
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput
from jamey_engine.observability.alertmanager import (
    AlertmanagerClient,
    Matcher,
    matching_alerts,
    parse_matcher,
    parse_matchers,
)
from jamey_engine.observability.matchers import MAX_MATCHER_CHARS
from jamey_engine.observability.silences import create_silence

REPO = Path(__file__).resolve().parents[2]
RULE_NAMES = sorted(
    {
        rule["alert"]
        for group in yaml.safe_load((REPO / "prometheus" / "rules" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
)
MADE_UP = "ZzSomethingNoRuleNames"
CATCH_ALL = [
    ["alertname=~.+"],
    ["alertname=~.*"],
    ["alertname=~(?:.+)?"],
    ["alertname!=ZzNothing"],
    ["alertname=~Jamey.*"],
    ["alertname=~.+", "severity=~.+"],
    ["severity=~.+"],
    ["alertname=~.+", "job!=other"],
]


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AmServer]:
    server = start_alertmanager(tmp_path_factory.mktemp("am-abuse"))
    for severity in ("warning", "critical"):
        server.post_alerts(*(alert(name, severity) for name in [*RULE_NAMES, MADE_UP]))
    wait_until(
        lambda: len(AlertmanagerClient(server.url).alerts()) == 2 * (len(RULE_NAMES) + 1),
        message="every rule's alert (and a made-up one) in Alertmanager",
        every=0.2,
    )
    yield server
    server.stop()


@pytest.mark.parametrize("texts", CATCH_ALL, ids=lambda texts: ",".join(texts))
def test_matchers_catching_every_alert_name_are_refused(
    am: AmServer, engine: Engine, texts: list[str]
) -> None:
    client = AlertmanagerClient(am.url)
    matchers = [parse_matcher(text) for text in texts]
    caught = {a.alertname for a in matching_alerts(client.alerts(), matchers)}
    assert set(RULE_NAMES) <= caught, "the case must catch every rule's alert"
    with pytest.raises(InvalidInput, match=r"every alert name|match everything"):
        parse_matchers(texts)
    with pytest.raises(InvalidInput, match=r"every alert name|match everything"):
        create_silence(client, engine.db, None, matchers, timedelta(days=30), actor="mallory", comment="x")
    assert [s for s in client.silences(include_expired=True) if s.created_by == "mallory"] == []


def test_the_cli_refuses_a_catch_all_silence_in_one_line(am: AmServer, data_dir: Path) -> None:
    env = {
        "JAMEY_DATA_DIR": str(data_dir),
        "ALERTMANAGER_URL": am.url,
        "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "JAMEY_DATABASE_URL": "",
    }
    args = ["alerts", "silence", "--match", "alertname=~.+", "--for", "30d", "--comment", "quiet"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code != 0
    assert "every alert name" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert [
        s for s in AlertmanagerClient(am.url).silences(include_expired=True) if s.comment == "quiet"
    ] == []


def test_a_silence_scoped_by_another_labels_value_is_allowed(am: AmServer, engine: Engine) -> None:
    client = AlertmanagerClient(am.url)
    for texts in (["severity=critical"], ["alertname=~.+", "instance=host1"], ["alertname=~Jamey.+Failed"]):
        silence_id = create_silence(
            client, engine.db, None, parse_matchers(texts), timedelta(hours=1), actor="test", comment="scoped"
        )
        client.delete_silence(silence_id)


def test_a_narrow_regex_is_anchored_as_alertmanager_anchors_it(am: AmServer, engine: Engine) -> None:
    client = AlertmanagerClient(am.url)
    # Unanchored, "Backup" would also catch JameyBackupFailed; anchored it catches nothing.
    for text in ("alertname=~Backup", "alertname=~JameyBackup(Failed|TooOld)"):
        matchers = parse_matchers([text, "severity=critical"])
        predicted = {a.fingerprint for a in matching_alerts(client.alerts(), matchers)}
        silence_id = create_silence(
            client, engine.db, None, matchers, timedelta(hours=1), actor="test", comment="anchoring"
        )
        assert bool(predicted) == (text != "alertname=~Backup")

        def suppressed(silence_id: str = silence_id) -> set[str]:
            return {a.fingerprint for a in client.alerts() if silence_id in a.silenced_by}

        if predicted:
            wait_until(
                lambda want=predicted: suppressed() == want,
                message="Alertmanager silences what was predicted",
                every=0.2,
            )
        assert suppressed() == predicted
        client.delete_silence(silence_id)
    assert len(oplog.recent_operations(engine.db, kind="silence")) == 2


def test_a_long_matcher_is_refused_naming_it(am: AmServer, engine: Engine) -> None:
    value = "JameyBackupFailed|" + "x" * MAX_MATCHER_CHARS
    with pytest.raises(InvalidInput, match=r"matcher alertname=~.*at most 256"):
        parse_matchers([f"alertname=~{value}"])
    client = AlertmanagerClient(am.url)
    with pytest.raises(InvalidInput, match="at most 256"):
        client.post_silence(
            [Matcher("alertname", value, is_regex=True)], ends_at=utcnow() + timedelta(hours=1),
            created_by="test", comment="long",
        )  # fmt: skip
    assert [s for s in client.silences(include_expired=True) if s.comment == "long"] == []


def test_regexes_have_re2_semantics() -> None:
    # Go's regexp (RE2) has no backreferences or lookarounds; Alertmanager refuses them.
    for text in (r"alertname=~(Jamey)\1", "alertname=~(?=Jamey)Jamey.*"):
        with pytest.raises(InvalidInput, match="does not compile"):
            parse_matcher(text)
    assert not parse_matcher("alertname=~Jamey.").matches({"alertname": "Jamey\n"})


def test_a_backtracking_regex_evaluates_at_once() -> None:
    # Under Python's re, ((.|.)*)*! takes 16 s on 14 characters and doubles with each one more:
    # 40 would not finish this year. The child is only a guard against hanging the suite.
    code = (
        "from jamey_engine.observability.alertmanager import parse_matcher\n"
        "m = parse_matcher('alertname=~((.|.)*)*!')\n"
        "print(m.matches({'alertname': 'J' * 40}), m.matches({'alertname': 'J' * 40 + '!'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
