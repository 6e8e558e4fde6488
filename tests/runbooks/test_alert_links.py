"""The one alert mapping (jamey_engine.runbooks.links): every alert in the rules has a diagnosis,
remediations are offered only where their notebook exists, and ``runbook list`` says what each
notebook answers."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from jamey_engine.cli import cli
from jamey_engine.runbooks.catalog import load_catalog
from jamey_engine.runbooks.links import ALERT_LINKS, answers, rule_alert_names, runbook_for_alert

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules"


def test_every_alert_in_the_rules_has_a_diagnosis_notebook_of_kind_analysis() -> None:
    catalog = load_catalog(ROOT / "notebooks")
    names = rule_alert_names(RULES)
    assert len(names) >= 17, names
    missing = sorted(name for name in names if name not in ALERT_LINKS)
    assert not missing, f"alerts without a diagnosis in links.py: {missing}"
    for name in names:
        diagnosis = ALERT_LINKS[name].diagnosis
        assert diagnosis in catalog, f"{name}: diagnosis notebook {diagnosis} does not exist"
        assert catalog[diagnosis].kind == "analysis", f"{name}: {diagnosis} would change data"


def test_the_mapping_names_no_alert_the_rules_do_not_have() -> None:
    assert set(ALERT_LINKS) <= rule_alert_names(RULES)


def test_a_remediation_is_offered_only_while_its_notebook_exists() -> None:
    link = runbook_for_alert("JameyMemoryIndexTooLarge", {"layer": "episodic"}, {"prune_memories"})
    assert link is not None and link.runbook == "prune_memories" and link.parameters == {"layer": "episodic"}
    assert runbook_for_alert("JameyMemoryIndexTooLarge", {"layer": "episodic"}, set()) is None
    assert runbook_for_alert("JameyBackupFailed", {}, set()) is None
    found = runbook_for_alert("JameyBackupFailed", {}, {"take_backup"})
    assert found is not None and found.runbook == "take_backup"
    assert answers("take_backup", set()) == []
    assert answers("take_backup", {"take_backup"}) == [
        "JameyBackupFailed",
        "JameyBackupNeverSucceeded",
        "JameyBackupTooOld",
    ]


def test_runbook_list_json_names_the_alerts_each_notebook_answers(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "runbook", "list", "--json"])
    assert result.exit_code == 0, result.output
    by_name = {item["name"]: item for item in json.loads(result.output)}
    assert by_name["prune_memories"]["answers"] == ["JameyMemoryIndexTooLarge"]
    assert by_name["memory_growth"]["answers"] == []
    assert sorted(by_name["diagnose_alert"]["answers"]) == sorted(rule_alert_names(RULES))


def test_every_remediation_of_the_mapping_is_a_plan_runbook_of_the_catalog() -> None:
    from jamey_engine.plans.actions import get_action
    from jamey_engine.runbooks.catalog import ADMIN_RUNBOOKS, PLAN_ACTIONS

    catalog = load_catalog(ROOT / "notebooks")
    remediations = {link.remediation for link in ALERT_LINKS.values() if link.remediation}
    assert remediations == {
        "prune_memories",
        "take_backup",
        "flush_memory_log",
        "apply_retention",
        "rotate_key",
    }
    for name in remediations:
        runbook = catalog[name]
        assert runbook.kind == "runbook", f"{name} changes data but is no runbook"
        assert runbook.plan_action == PLAN_ACTIONS[name]
        assert {p.name for p in runbook.parameters} >= {"dry_run", "confirm", "plan_id"}, name
        assert runbook.description, f"{name}: its first markdown cell explains it"
    # A runbook needs admin exactly when its plan action does (its dry run stores the plan).
    for name, action in PLAN_ACTIONS.items():
        assert (name in ADMIN_RUNBOOKS) == (get_action(action).scope == "admin"), name
        assert name in catalog, f"{name} is mapped to {action} but has no notebook"


def test_each_alert_s_remediation_is_filled_from_its_labels() -> None:
    key = runbook_for_alert("JameyApiKeyExpiringSoon", {"key_id": "k_123", "severity": "warning"})
    assert key is not None and (key.runbook, key.parameters) == ("rotate_key", {"key_id": "k_123"})
    log = runbook_for_alert("JameyMemoryLogNotFlushing", {"layer": "working"})
    assert log is not None and (log.runbook, log.parameters) == ("flush_memory_log", {"layer": "working"})
    retention = runbook_for_alert("JameyRetentionFailing", {})
    assert retention is not None and retention.runbook == "apply_retention"
    for name in ("JameyBackupFailed", "JameyBackupTooOld", "JameyBackupNeverSucceeded"):
        found = runbook_for_alert(name, {})
        assert found is not None and found.runbook == "take_backup", name
