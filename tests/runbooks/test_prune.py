"""The prune runbook on real indexes: preflight, plan, dry run, apply, second apply, refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, SEEDED_LAYERS, Lines

from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput
from jamey_engine.oplog import operation_summary
from jamey_engine.runbooks import (
    PruneRunbook,
    apply_prune,
    parse_layers,
    plan_prune,
    prune_preflight,
    verify_prune,
)

ALL_OLD = OLD_PER_LAYER * len(SEEDED_LAYERS)
PHRASE = f"prune {ALL_OLD} memories older than 30d"


def _counts(engine: Engine) -> dict[str, int]:
    return {layer: size.documents for layer, size in engine.memory.sizes().layers.items()}


def test_parse_layers_accepts_all_one_or_several() -> None:
    assert len(parse_layers("all")) == 5
    assert parse_layers("working") == ("working",)
    assert parse_layers("working, episodic") == ("working", "episodic")


def test_parse_layers_rejects_an_unknown_layer_naming_it() -> None:
    with pytest.raises(InvalidInput, match="layer 'workng' is not a layer; use all or one of: short_term"):
        parse_layers("workng")


def test_the_plan_counts_what_would_go_and_states_the_phrase(seeded: Engine) -> None:
    plan = plan_prune(seeded, parse_layers("all"), "30d")
    assert plan.total_to_delete == ALL_OLD
    assert plan.phrase == PHRASE
    by_layer = {p.layer: p for p in plan.layers}
    assert by_layer["working"].to_delete == OLD_PER_LAYER
    assert by_layer["working"].documents == OLD_PER_LAYER + NEW_PER_LAYER
    assert 0 < by_layer["working"].bytes_to_free < by_layer["working"].bytes
    assert by_layer["semantic"].to_delete == 0


def test_a_plan_rejects_a_bad_duration(seeded: Engine) -> None:
    with pytest.raises(InvalidInput, match="older_than 'soon' is not a duration"):
        plan_prune(seeded, ("working",), "soon")


def test_preflight_passes_on_a_healthy_store(seeded: Engine) -> None:
    checks = prune_preflight(seeded, parse_layers("all"))
    assert checks.ok, checks.lines()
    assert any(c.name == "writer lock" for c in checks.checks)


def test_preflight_fails_while_a_writer_holds_the_lock(seeded: Engine) -> None:
    with seeded.memory.generations.shared("a long import"):
        checks = prune_preflight(seeded, ("working",), lock_wait=0.2)
    assert not checks.ok
    assert [c.name for c in checks.failures] == ["writer lock"]
    assert "not free within 0.2s" in checks.failures[0].detail


def test_preflight_fails_when_an_index_is_damaged(seeded: Engine) -> None:
    meta = seeded.memory.layer_path("working") / "meta.json"
    meta.write_text("{not json")
    checks = prune_preflight(seeded, ("working",))
    assert [c.name for c in checks.failures] == ["working: index opens"]


def test_dry_run_prune_changes_nothing(seeded: Engine) -> None:
    before = _counts(seeded)
    plan = plan_prune(seeded, parse_layers("all"), "30d")
    outcome = apply_prune(seeded, plan, dry_run=True, confirm=PHRASE)
    assert outcome.decision.verdict == "dry_run"
    assert _counts(seeded) == before
    assert seeded.vault.list() == []


def test_wrong_confirm_refuses_and_changes_nothing(seeded: Engine) -> None:
    before = _counts(seeded)
    plan = plan_prune(seeded, parse_layers("all"), "30d")
    outcome = apply_prune(seeded, plan, dry_run=False, confirm="prune everything")
    assert outcome.decision.verdict == "refused"
    assert _counts(seeded) == before
    assert seeded.vault.list() == []


def test_apply_backs_up_prunes_and_records_then_second_apply_is_a_noop(seeded: Engine) -> None:
    plan = plan_prune(seeded, parse_layers("all"), "30d")
    outcome = apply_prune(seeded, plan, dry_run=False, confirm=PHRASE)
    assert outcome.applied
    assert outcome.deleted == ALL_OLD
    assert outcome.backup is not None
    assert outcome.backup.documents["working"] == OLD_PER_LAYER + NEW_PER_LAYER
    assert _counts(seeded)["working"] == NEW_PER_LAYER
    summary = operation_summary(seeded.db)
    assert summary.pruned_documents["working"] == OLD_PER_LAYER
    assert summary.pruned_documents["episodic"] == OLD_PER_LAYER

    again = apply_prune(seeded, plan_prune(seeded, parse_layers("all"), "30d"), dry_run=False, confirm=PHRASE)
    assert again.decision.verdict == "noop"
    assert again.backup is None
    assert len(seeded.vault.list()) == 1
    assert _counts(seeded)["working"] == NEW_PER_LAYER


def test_a_plan_that_changed_since_it_was_shown_is_refused(seeded: Engine) -> None:
    plan = plan_prune(seeded, ("working",), "30d")
    seeded.memory.store("working", "one more old note", "2020-01-01T00:00:00Z")
    outcome = apply_prune(seeded, plan, dry_run=False, confirm=plan.phrase)
    assert outcome.decision.verdict == "refused"
    assert "The plan changed" in outcome.notes[0]
    assert _counts(seeded)["working"] == OLD_PER_LAYER + NEW_PER_LAYER + 1


def test_backup_first_false_takes_no_backup(seeded: Engine) -> None:
    plan = plan_prune(seeded, ("episodic",), "30d")
    outcome = apply_prune(seeded, plan, dry_run=False, confirm=plan.phrase, backup_first=False)
    assert outcome.applied and outcome.backup is None
    assert seeded.vault.list() == []


def test_the_notebook_runbook_runs_every_step_and_verifies(seeded_dir: Path) -> None:
    lines = Lines()
    runbook = PruneRunbook.open(
        data_dir=seeded_dir,
        layer="working",
        dry_run=False,
        confirm=f"prune {OLD_PER_LAYER} memories older than 30d",
        say=lines,
    )
    try:
        assert runbook.preflight() is not None
        plan = runbook.plan()
        assert plan is not None and list(plan["to_delete"]) == [OLD_PER_LAYER]
        assert runbook.apply() is not None
        verification = runbook.verify()
        assert verification is not None and set(verification["result"]) == {"ok"}
        facts = runbook.summary()
    finally:
        runbook.close()
    assert facts["outcome"] == "applied" and facts["deleted"] == OLD_PER_LAYER and facts["verified"] is True
    assert "error" not in lines.text


def test_a_bad_parameter_stops_the_notebook_runbook_plainly(seeded_dir: Path) -> None:
    lines = Lines()
    runbook = PruneRunbook.open(data_dir=seeded_dir, older_than="forever", say=lines)
    assert runbook.stopped
    assert runbook.preflight() is None
    facts = runbook.summary()
    assert lines[0].startswith("error: older_than 'forever' is not a duration")
    assert facts["error"] is not None


def test_dry_run_must_be_a_boolean(seeded_dir: Path) -> None:
    lines = Lines()
    PruneRunbook.open(data_dir=seeded_dir, dry_run="no", say=lines)  # type: ignore[arg-type]
    assert lines[0] == "error: dry_run 'no' must be True or False"


def test_verification_fails_when_an_old_memory_is_left(seeded: Engine) -> None:
    plan = plan_prune(seeded, ("working",), "30d")
    outcome = apply_prune(seeded, plan, dry_run=False, confirm=plan.phrase, backup_first=False)
    assert verify_prune(seeded, outcome).ok
    seeded.memory.store("working", "an old memory imported meanwhile", "2020-01-01T00:00:00Z")
    checks = verify_prune(seeded, outcome)
    assert [c.name for c in checks.failures] == ["working: nothing older than 30d left"]


def test_a_database_that_is_down_does_not_hide_a_finished_prune(data_dir: Path) -> None:
    from helpers import closed_port, make_settings
    from seed_data import seed_memories

    down = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/jamey"
    engine = Engine(make_settings(data_dir, JAMEY_DATABASE_URL=down))
    try:
        seed_memories(engine)
        plan = plan_prune(engine, ("working",), "30d")
        outcome = apply_prune(engine, plan, dry_run=False, confirm=plan.phrase, backup_first=False)
        assert outcome.applied and outcome.deleted == OLD_PER_LAYER
        assert outcome.notes and "recording it in the operation log failed" in outcome.notes[0]
        assert verify_prune(engine, outcome).ok
    finally:
        engine.close()
