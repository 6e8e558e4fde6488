"""``jamey plans`` in real processes (SQLite and PostgreSQL): create, show, list, approve with a
key file, apply; the CLI's own actor cannot approve; the same plan JSON as the engine's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.plans import store

from .conftest import add_memories


def jamey(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jamey_engine ARGS`` as a separate process on ``settings``."""
    environ = {**os.environ, **settings.to_environ(), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "jamey_engine", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def test_plans_create_show_list_and_apply_through_the_cli(db_engine: Engine) -> None:
    add_memories(db_engine)
    created = jamey(db_engine.settings, "plans", "create", "prune", "-p", "older_than", "30d", "--json")
    assert created.returncode == 0, created.stderr
    planned = json.loads(created.stdout)
    assert planned["status"] == "planned" and planned["summary"]["total_to_delete"] == 5
    assert planned == store.get(db_engine.db, planned["id"]).as_dict()  # the engine's JSON exactly

    shown = jamey(db_engine.settings, "plans", "show", planned["id"])
    assert shown.returncode == 0 and "confirm phrase: prune 5 memories older than 30d" in shown.stdout
    listed = jamey(db_engine.settings, "plans", "list", "--status", "planned", "--json")
    assert [p["id"] for p in json.loads(listed.stdout)] == [planned["id"]]

    wrong = jamey(db_engine.settings, "plans", "apply", planned["id"], "--confirm", "prune everything")
    assert wrong.returncode == 2 and wrong.stderr.startswith(
        "error: confirm 'prune everything' does not match"
    )
    assert "Traceback" not in wrong.stderr and db_engine.memory.count("working") == 8

    done = jamey(
        db_engine.settings, "plans", "apply", planned["id"], "--confirm", planned["confirm_phrase"], "--json"
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "applied" and body["result"]["deleted"]["working"] == 5
    assert db_engine.memory.count("working") == 3


def test_approval_from_the_cli_needs_another_persons_key_file(db_engine: Engine, tmp_path: Path) -> None:
    settings = db_engine.settings
    env = {"JAMEY_APPROVALS": "key-revoke"}
    victim = db_engine.keys.create("victim", scopes=("memory:read",))
    created = jamey(settings, "plans", "create", "key-revoke", "-p", "key_ids", victim.id, "--json", env=env)
    assert created.returncode == 0, created.stderr
    planned = json.loads(created.stdout)
    assert planned["status"] == "pending_approval"

    own = jamey(settings, "plans", "approve", planned["id"], "--comment", "me", env=env)
    assert own.returncode == 1 and "can only be approved with a key" in own.stderr
    reader_file = tmp_path / "reader.key"
    reader_file.write_text(db_engine.keys.create("reader", scopes=("ops:read",)).key)
    weak = jamey(
        settings, "plans", "approve", planned["id"], "--comment", "ok", "--key-file", str(reader_file)
    )
    assert weak.returncode == 1 and "lacks the scope 'admin'" in weak.stderr
    pending = jamey(
        settings, "plans", "apply", planned["id"], "--confirm", planned["confirm_phrase"], env=env
    )
    assert pending.returncode == 1 and f"jamey plans approve {planned['id']}" in pending.stderr

    admin_file = tmp_path / "admin.key"
    admin_file.write_text(db_engine.keys.create("second", scopes=("admin",)).key)
    approved = jamey(
        settings, "plans", "approve", planned["id"], "--comment", "leaked", "--key-file", str(admin_file)
    )
    assert approved.returncode == 0, approved.stderr
    assert "approved by second" in approved.stdout
    done = jamey(settings, "plans", "apply", planned["id"], "--confirm", planned["confirm_phrase"], env=env)
    assert done.returncode == 0, done.stderr
    assert db_engine.keys.show(victim.id).status == "revoked"
    trail = [e["event"] for e in store.events(db_engine.db, planned["id"])]
    assert trail == [
        "planned",
        "approve_refused",
        "approve_refused",
        "apply_refused",
        "approved",
        "applying",
        "applied",
    ]


@pytest.mark.parametrize("command", [("memory", "prune", "--all", "--older-than", "30d")])
def test_a_thin_command_stops_with_one_line_when_approval_is_required(
    db_engine: Engine, command: tuple[str, ...]
) -> None:
    add_memories(db_engine)
    result = jamey(db_engine.settings, *command, "--yes", env={"JAMEY_APPROVALS": "prune"})
    assert result.returncode == 3, result.stderr
    (line,) = [
        line for line in result.stderr.splitlines() if not line.startswith("INFO ")
    ]  # not the migration log
    (pending,) = store.list_plans(db_engine.db, status="pending_approval")
    assert (
        line.startswith(f"plan {pending.id} needs approval") and f"jamey plans approve {pending.id}" in line
    )
    assert db_engine.memory.count("working") == 8
