"""The one confirmation rule, and the step guard that keeps tracebacks from notebook readers."""

from __future__ import annotations

from pathlib import Path

import pytest
from seed_data import Lines

from jamey_engine.errors import Busy
from jamey_engine.runbooks import NotebookRunbook, confirmation_matches, decide, engine_for

PHRASE = "prune 12 memories older than 30d"


def test_confirmation_ignores_extra_whitespace_only() -> None:
    assert confirmation_matches(PHRASE, "  prune 12  memories older than 30d ")
    assert not confirmation_matches(PHRASE, "Prune 12 memories older than 30d")
    assert not confirmation_matches(PHRASE, "prune 13 memories older than 30d")
    assert not confirmation_matches("", "")


def test_a_dry_run_never_goes_even_when_confirmed() -> None:
    decision = decide(action="prune", phrase=PHRASE, dry_run=True, confirm=PHRASE)
    assert decision.verdict == "dry_run"
    assert f"confirm={PHRASE!r}" in decision.message


def test_a_wrong_confirm_is_refused_naming_the_phrase() -> None:
    decision = decide(action="prune", phrase=PHRASE, dry_run=False, confirm="yes")
    assert decision.verdict == "refused"
    assert not decision.go
    assert "'yes'" in decision.message and repr(PHRASE) in decision.message
    assert "Nothing was changed" in decision.message


def test_an_empty_confirm_is_refused() -> None:
    decision = decide(action="prune", phrase=PHRASE, dry_run=False, confirm="")
    assert decision.verdict == "refused"
    assert "confirm is empty" in decision.message


def test_nothing_to_do_is_a_noop_whatever_confirm_says() -> None:
    decision = decide(action="prune", phrase=PHRASE, dry_run=False, confirm="x", nothing_to_do="none is old.")
    assert decision.verdict == "noop"


def test_blocked_refuses_before_anything_else() -> None:
    decision = decide(
        action="restore",
        phrase="restore b",
        dry_run=False,
        confirm="restore b",
        blocked="backup b is damaged.",
    )
    assert decision.verdict == "refused"
    assert decision.message.startswith("Refused: backup b is damaged.")


def test_the_matching_phrase_goes() -> None:
    assert decide(action="prune", phrase=PHRASE, dry_run=False, confirm=PHRASE).go


def test_a_failing_step_prints_the_message_and_later_steps_are_skipped() -> None:
    lines = Lines()
    runbook = NotebookRunbook(None, say=lines)

    def fail() -> int:
        raise Busy("layer 'working' is being written by another process; try again")

    assert runbook._step("apply", fail) is None
    assert runbook._step("verify", lambda: 1) is None
    assert lines[0] == "error: layer 'working' is being written by another process; try again"
    assert "Traceback" not in lines.text
    assert lines[-1].startswith("Skipped verify: the runbook stopped at apply")
    assert runbook.stopped and runbook.stopped_at == "apply"


def test_a_bug_is_not_hidden() -> None:
    runbook = NotebookRunbook(None, say=Lines())
    with pytest.raises(ZeroDivisionError):
        runbook._step("plan", lambda: 1 / 0)


def test_engine_for_uses_the_given_data_dir(tmp_path: Path) -> None:
    engine = engine_for(tmp_path / "d")
    assert engine.settings.data_dir == tmp_path / "d"
    assert engine.settings.backup_dir == tmp_path / "d" / "backups"


def test_engine_for_in_the_notebooks_dir_defaults_to_the_repositorys_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert engine_for(None, environ={}).settings.data_dir == tmp_path / "data"
    assert engine_for("", environ={"JAMEY_DATA_DIR": "/srv/jamey"}).settings.data_dir == Path("/srv/jamey")


def test_engine_for_elsewhere_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert engine_for(None, environ={}).settings.data_dir == tmp_path / "data"
