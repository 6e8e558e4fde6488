"""`jamey backup ...`: exit codes and output, through click's runner on a real data dir."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jamey_engine.cli import cli
from jamey_engine.engine import Engine

from .support import fill, state
from .test_damage import rewrite_member

Invoke = Callable[..., Result]


@pytest.fixture
def run(engine: Engine) -> Invoke:
    def invoke(*args: str, input: str | None = None) -> Result:
        engine.close()  # release the test's handles; each command opens its own engine
        return CliRunner().invoke(
            cli, ["--data-dir", str(engine.settings.data_dir), "backup", *args], input=input
        )

    return invoke


def test_create_json_has_the_id_and_list_shows_it(engine: Engine, run: Invoke) -> None:
    fill(engine, per_layer=3)
    created = run("create", "--json")
    assert created.exit_code == 0, created.output
    info = json.loads(created.output)
    assert info["id"] and info["status"] == "unverified" and info["keys"] == 4
    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [b["id"] for b in json.loads(listed.output)] == [info["id"]]
    table = run("list")
    assert table.exit_code == 0 and info["id"] in table.output and "unverified" in table.output


def test_verify_exits_zero_for_a_sound_backup_and_non_zero_naming_the_damaged_file(
    engine: Engine, run: Invoke
) -> None:
    fill(engine, per_layer=3)
    backup = engine.vault.create()
    ok = run("verify", backup.id)
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.output
    rewrite_member(backup.path, "database.json")
    bad = run("verify", backup.id)
    assert bad.exit_code != 0, bad.output
    assert "database.json" in bad.output and "Traceback" not in bad.output


def test_restore_without_yes_and_without_an_answer_refuses_and_changes_nothing(
    engine: Engine, run: Invoke, tmp_path: Path
) -> None:
    fill(engine, per_layer=3)
    backup = engine.vault.create()
    engine.memory.store("working", "after the backup")
    before = state(engine, tmp_path)
    refused = run("restore", backup.id)
    assert refused.exit_code == 1, refused.output
    assert "cancelled" in refused.output
    no = run("restore", backup.id, input="n\n")
    assert no.exit_code == 1, no.output
    assert state(Engine(engine.settings), tmp_path) == before


def test_restore_dry_run_then_yes(engine: Engine, run: Invoke, tmp_path: Path) -> None:
    fill(engine, per_layer=3)
    backup = engine.vault.create()
    before = state(engine, tmp_path)
    engine.memory.store("working", "after the backup")
    dry = run("restore", backup.id, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "working" in dry.output and "-1" in dry.output
    done = run("restore", backup.id, "--yes")
    assert done.exit_code == 0, done.output
    assert "restored" in done.output and "safety backup" in done.output
    fresh = Engine(engine.settings)
    try:
        assert state(fresh, tmp_path) == before
    finally:
        fresh.close()


def test_delete_and_prune(engine: Engine, run: Invoke) -> None:
    fill(engine, per_layer=1)
    ids = [engine.vault.create().id for _ in range(3)]
    deleted = run("delete", ids[0], "--yes")
    assert deleted.exit_code == 0, deleted.output
    pruned = run("prune", "--keep", "1", "--yes")
    assert pruned.exit_code == 0, pruned.output
    assert ids[1] in pruned.output
    assert [info.id for info in Engine(engine.settings).vault.list()] == [ids[2]]
    from jamey_engine.plans import list_plans

    # Both went through backup-delete plans: one backup, then the prune's retention.
    planned = [p.parameters for p in list_plans(engine.db) if p.action == "backup-delete"]
    assert [bool(p["retention"]) for p in planned] == [True, False] and planned[0]["keep_last"] == 1
    assert run("prune", "--keep", "1", "--yes").output.strip() == "nothing to prune"
    zero = run("prune", "--keep", "0")
    assert zero.exit_code == 2 and "--keep" in zero.output


def test_unknown_and_malformed_ids_are_clear_errors(run: Invoke) -> None:
    missing = run("verify", "20200101T000000Z-abcdef")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    malformed = run("restore", "../../etc", "--yes")
    assert malformed.exit_code == 2 and "../../etc" in malformed.output
