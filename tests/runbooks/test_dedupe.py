"""The dedupe runbook's rules on real indexes: the phrase, a changed plan refused, no backup when asked."""

from __future__ import annotations

from seed_data import Lines

from jamey_engine.engine import Engine
from jamey_engine.runbooks import DedupeRunbook, apply_dedupe, plan_dedupe, verify_dedupe


def _duplicate(engine: Engine, copies: int) -> None:
    engine.memory.store_batch(
        "working", [(" Disk FULL ", f"2026-01-0{i + 1}T00:00:00Z") for i in range(copies)]
    )


def test_the_phrase_names_the_count_and_the_layers(seeded: Engine) -> None:
    _duplicate(seeded, 3)
    assert plan_dedupe(seeded, ("working",)).phrase == "dedupe 2 duplicate memories in working"
    every = plan_dedupe(seeded, ("short_term", "long_term", "working", "episodic", "semantic"))
    assert every.phrase == "dedupe 2 duplicate memories in all layers"


def test_a_plan_that_changed_since_it_was_shown_is_refused(seeded: Engine) -> None:
    _duplicate(seeded, 3)
    shown = plan_dedupe(seeded, ("working",))
    seeded.memory.store("working", "disk full")  # one more repeat since the plan was shown
    outcome = apply_dedupe(seeded, shown, dry_run=False, confirm=shown.phrase, backup_first=False)
    assert outcome.decision.verdict == "refused"
    assert outcome.notes == (
        "The plan changed since it was shown: it now says 'dedupe 3 duplicate memories in working'.",
    )
    assert seeded.memory.count("working") == 10 + 4
    assert verify_dedupe(seeded, outcome).ok


def test_apply_without_a_backup_deletes_and_verifies(seeded: Engine) -> None:
    _duplicate(seeded, 4)
    plan = plan_dedupe(seeded, ("working", "episodic"))
    outcome = apply_dedupe(seeded, plan, dry_run=False, confirm=plan.phrase, backup_first=False)
    assert outcome.applied and outcome.backup is None and outcome.deleted == 3
    assert seeded.vault.list() == []
    checks = verify_dedupe(seeded, outcome)
    assert checks.ok, checks.lines()


def test_the_runbook_says_when_there_is_nothing_to_do(seeded: Engine) -> None:
    said = Lines()
    runbook = DedupeRunbook.open(data_dir=seeded.settings.data_dir, layer="episodic", dry_run=False, say=said)
    try:
        runbook.preflight()
        runbook.plan()
        runbook.apply()
        runbook.verify()
        summary = runbook.summary()
    finally:
        runbook.close()
    assert "No duplicates." in said.text
    assert summary["outcome"] == "noop" and summary["confirm_phrase"] is None and summary["verified"] is True
