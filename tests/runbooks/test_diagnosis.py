"""Diagnoses in process, one per alert family, against a real Prometheus full of known data
(tests/promserver.py: 8% of API requests fail, one 429 a second, p95 0.75 s, growing indexes, a
daily backup at 03:00 UTC...) and a real data dir: each returns the verdict those facts call for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from promserver import PromServer

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput, Unavailable
from jamey_engine.observability.evidence_queries import FAMILIES
from jamey_engine.observability.promql import PromQuery
from jamey_engine.runbooks.diagnosis import diagnose, parse_labels
from jamey_engine.runbooks.links import ALERT_LINKS


@pytest.fixture
def prom(backfilled_prometheus: PromServer) -> Iterator[PromQuery]:
    with PromQuery(backfilled_prometheus.url, 10.0) as query:
        yield query


def _verdict(engine: Engine, prom: PromQuery, alertname: str, **labels: str) -> str:
    found = diagnose(
        engine, prom, alertname, labels, utcnow() - timedelta(minutes=5), available_runbooks=set()
    )
    assert not [n for n in found.notes if n.startswith("Prometheus")], found.notes
    json.dumps(found.summary())  # the run's summary is JSON
    return found.verdict


def test_every_family_of_the_mapping_has_evidence_queries_and_a_verdict_rule() -> None:
    from jamey_engine.runbooks.verdicts import RULES

    families = {link.family for link in ALERT_LINKS.values()}
    assert families == set(FAMILIES) == set(RULES)


@pytest.mark.parametrize(
    ("alertname", "labels", "expected"),
    [
        ("JameyServiceDown", {}, "answers Prometheus' scrapes again (up=1)"),
        (
            "JameyHighErrorRate",
            {},
            "8.0% of API requests fail with 5xx, mostly on /memories/{layer} (0.48/s)",
        ),
        ("JameyHighLatency", {}, "p95 latency is 0.75 s"),
        (
            "JameyRateLimitSurge",
            {},
            "1.00 requests/s are refused (16.1% of requests), mostly by the key limit",
        ),
        ("JameyMemoryIndexTooLarge", {"layer": "semantic"}, "(under the 1.0 GiB threshold), growing"),
        ("JameyMemoryLogNotFlushing", {"layer": "episodic"}, "No write-ahead log size is recorded"),
        ("JameyRetentionFailing", {}, "No retention run is recorded"),
        ("JameyBackupTooOld", {}, "old (recent); 0 archive(s) in the backup directory."),
        ("JameyMqttDisconnected", {}, "connected to the MQTT broker now (0 connection failures in 15 min)"),
        ("JameyMqttConnectionFailures", {}, "connected to the MQTT broker now"),
        ("JameyHighMemoryUsage", {}, "resident memory is 150.0 MiB"),
        ("JameyHighCpuUsage", {}, "uses 5.0% of a core at 6.2 requests/s"),
        ("JameyDataDirDiskNearlyFull", {}, "has 40.0% free (37.3 GiB)"),
        ("JameyApiKeyExpiringSoon", {}, "No key is about to expire now."),
        (
            "JameyAlertReceiverFailing",
            {},
            "no failed webhook delivery in the last 15 minutes; the webhook key is missing",
        ),
    ],
)
def test_each_family_s_verdict_states_the_measured_facts(
    engine: Engine, prom: PromQuery, alertname: str, labels: dict[str, str], expected: str
) -> None:
    assert expected in _verdict(engine, prom, alertname, **labels)


def test_index_diagnosis_carries_the_layer_s_size_growth_and_suggests_pruning(
    engine: Engine, prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    found = diagnose(
        engine, prom, "JameyMemoryIndexTooLarge", {"layer": "semantic"}, available_runbooks={"prune_memories"}
    )
    size = found.evidence["layer_index_size"]
    expected = backfilled_prometheus.scenario.index_size("semantic", found.gathered_at.timestamp())
    assert abs(size - expected) / expected < 0.01, (size, expected)
    assert found.evidence["layer_growth_per_day"] == pytest.approx(50 * 1024**2, rel=0.05)
    assert "MiB a day: prune old memories." in found.verdict
    assert found.suggested_runbook == "prune_memories"
    assert set(found.series) == {"index_size", "index_growth_per_day"}


def test_a_failed_backup_is_the_verdict_with_its_error_from_the_operation_log(
    tmp_path: Path, prom: PromQuery
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = Settings.from_env(
        {"JAMEY_DATA_DIR": str(tmp_path / "data"), "JAMEY_BACKUP_DIR": str(blocker / "backups")}
    )
    engine = Engine(settings)
    try:
        with pytest.raises(Unavailable):
            engine.vault.create()
        found = diagnose(engine, prom, "JameyBackupFailed", {}, available_runbooks={"take_backup"})
    finally:
        engine.close()
    assert found.verdict.startswith("The last backup failed: cannot create the backup directory"), (
        found.verdict
    )
    assert found.evidence["failed_operations"] == 1
    assert found.suggested_runbook == "take_backup"
    assert found.operations.iloc[0]["kind"] == "backup"


def test_rate_limit_diagnosis_names_the_key_with_the_most_429s(engine: Engine, prom: PromQuery) -> None:
    from jamey_engine.keys.usage import UsageRecorder

    noisy = engine.keys.create("noisy-client", scopes=("memory:read",))
    quiet = engine.keys.create("quiet-client", scopes=("memory:read",))
    recorder = UsageRecorder(engine.db)
    for _ in range(7):
        recorder.count(noisy.id, 429)
    recorder.count(quiet.id, 429)
    recorder.count(quiet.id, 500)
    recorder.flush()
    verdict = _verdict(engine, prom, "JameyRateLimitSurge")
    assert f"key noisy-client ({noisy.id}): 7 in a day took the most 429s" in verdict


def test_with_prometheus_unreachable_the_diagnosis_still_ends_with_a_verdict(engine: Engine) -> None:
    from helpers import free_port

    with PromQuery(f"http://127.0.0.1:{free_port()}", 2.0) as down:
        found = diagnose(engine, down, "JameyHighErrorRate", {})
    assert found.verdict == "No request traffic is recorded, so the error rate cannot be judged."
    assert any(note.startswith("Prometheus:") for note in found.notes), found.notes


def test_an_unknown_alert_or_bad_labels_are_one_line_errors(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="alertname 'NoSuchAlert' is not an alert of prometheus/rules/"):
        diagnose(engine, None, "NoSuchAlert")
    with pytest.raises(InvalidInput, match="labels '\\[1\\]' must be a JSON object"):
        parse_labels("[1]")
    with pytest.raises(InvalidInput, match="starts_at"):
        diagnose(engine, None, "JameyHighErrorRate", {}, "yesterday")


def test_the_service_s_warnings_and_errors_come_from_the_stack_s_log(engine: Engine) -> None:
    log = engine.settings.data_dir / "stack" / "service.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        "INFO jamey: request served\n"
        "WARNING jamey.memory: layer episodic: flush failed (LockBusy)\n"
        "INFO jamey: request served\n"
        "ERROR jamey.vault: backup failed: No space left on device\n"
    )
    found = diagnose(engine, None, "JameyBackupFailed", {})
    assert found.log_lines == [
        "WARNING jamey.memory: layer episodic: flush failed (LockBusy)",
        "ERROR jamey.vault: backup failed: No space left on device",
    ]
    assert found.evidence["log_problems"] == 2
    assert not [note for note in found.notes if note.startswith("service log")]
