"""``jamey keys`` and ``jamey db`` through click's runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jamey_engine.cli import cli


class Jamey:
    """Runs ``jamey ARGS`` against one data dir and database."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.env = {"JAMEY_DATA_DIR": str(data_dir), "JAMEY_DATABASE_URL": database_url, "API_KEY": ""}
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(cli, list(args), env={**self.env, **(env or {})})

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)


@pytest.fixture
def jamey(data_dir: Path, database_url: str) -> Jamey:
    return Jamey(data_dir, database_url)


def test_db_upgrade_brings_a_fresh_database_to_the_newest_revision(jamey: Jamey) -> None:
    first = jamey.json("db", "upgrade")
    assert first["from"] is None and first["to"]
    assert "already at the newest" in jamey.ok("db", "upgrade").output
    current = jamey.json("db", "current")
    assert current["up_to_date"] and current["current"] == first["to"]
    assert "up to date" in jamey.ok("db", "current").output


def test_create_list_show_rotate_revoke_and_audit(jamey: Jamey) -> None:
    created = jamey.json(
        "keys", "create", "--name", "ci-bot", "--scope", "memory:read", "--scope", "memory:write",
        "--rate-limit", "30/minute", "--expires-in", "30d",
    )  # fmt: skip
    assert created["key"].startswith("jmy_") and created["id"] in created["key"]
    assert created["scopes"] == ["memory:read", "memory:write"] and created["rate_limit"] == "30/minute"
    listed = jamey.json("keys", "list")
    assert [k["id"] for k in listed] == [created["id"]]
    assert created["key"] not in json.dumps(listed)
    assert created["key"].split("_")[2] not in jamey.ok("keys", "list").output
    shown = jamey.json("keys", "show", created["id"])
    assert shown["status"] == "active" and shown["name"] == "ci-bot"
    assert "ci-bot" in jamey.ok("keys", "show", created["id"]).output
    rotated = jamey.json("keys", "rotate", created["id"], "--grace", "1h", "--yes")
    assert rotated["id"] != created["id"] and rotated["key"] != created["key"]
    assert jamey.json("keys", "show", created["id"])["status"] == "rotating"
    assert "limited to 100/minute" in jamey.ok("keys", "set-limit", rotated["id"], "100/minute").output
    revoked = jamey.ok("keys", "revoke", created["id"], "--yes").output
    assert "revoked" in revoked
    # Shown first, as every data-changing command does: the plan, its keys and its phrase.
    assert ": key-revoke " in revoked and "confirm phrase:" in revoked and "ci-bot" in revoked
    events = jamey.json("keys", "audit")
    assert [e["event"] for e in events] == ["revoked", "rate_limit_changed", "created", "rotated", "created"]
    assert all(e["actor"] == "cli" for e in events)
    assert "rate_limit_changed" in jamey.ok("keys", "audit").output


def test_create_prints_the_key_once_in_text_mode(jamey: Jamey) -> None:
    output = jamey.ok("keys", "create", "--name", "human").output
    key = output.strip().splitlines()[-1]
    assert key.startswith("jmy_") and "not shown again" in output
    assert key not in jamey.ok("keys", "list").output


def test_import_legacy_moves_the_api_key_variable(jamey: Jamey) -> None:
    result = jamey("keys", "import-legacy", env={"API_KEY": "the-old-key"})
    assert result.exit_code == 0, result.output
    assert "imported as key" in result.output
    assert "the-old-key" not in result.output
    (listed,) = jamey.json("keys", "list")
    assert listed["legacy"] is True
    again = jamey("keys", "import-legacy", env={"API_KEY": "the-old-key"})
    assert again.exit_code == 1 and "already imported" in again.output


def test_import_legacy_without_api_key_is_a_one_line_error(jamey: Jamey) -> None:
    result = jamey("keys", "import-legacy")
    assert result.exit_code == 2
    assert result.output.strip() == "error: API_KEY is not set, so there is no legacy key to import"


def one_line_error(result: Result, exit_code: int, *needles: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def test_bad_input_is_one_line_and_changes_nothing(jamey: Jamey) -> None:
    created = jamey.json("keys", "create", "--name", "stable", "--rate-limit", "10/second")
    before = (jamey.json("keys", "list"), jamey.json("keys", "audit"))
    one_line_error(jamey("keys", "show", "nosuchkey123"), 1, "'nosuchkey123'")
    one_line_error(jamey("keys", "revoke", "nosuchkey123"), 1, "'nosuchkey123'")
    one_line_error(jamey("keys", "rotate", "nosuchkey123"), 1, "'nosuchkey123'")
    one_line_error(jamey("keys", "set-limit", created["id"], "lots"), 2, "'lots'")
    one_line_error(jamey("keys", "set-limit", "nosuchkey123", "5/minute"), 1, "'nosuchkey123'")
    one_line_error(jamey("keys", "create", "--name", "x", "--rate-limit", "fast"), 2, "'fast'")
    one_line_error(
        jamey("keys", "create", "--name", "x", "--expires-in", "soon"), 2, "--expires-in", "'soon'"
    )
    one_line_error(jamey("keys", "create", "--name", "x", "--scope", "root"), 2, "'root'", "memory:read")
    one_line_error(jamey("keys", "create", "--name", "stable"), 1, "'stable'", "already exists")
    one_line_error(jamey("keys", "rotate", created["id"], "--grace", "1 hour"), 2, "--grace", "'1 hour'")
    assert (jamey.json("keys", "list"), jamey.json("keys", "audit")) == before


def test_an_unreachable_database_is_a_one_line_error(data_dir: Path) -> None:
    jamey = Jamey(data_dir, "postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    one_line_error(jamey("keys", "list"), 1, "127.0.0.1:1")
    one_line_error(jamey("db", "upgrade"), 1, "127.0.0.1:1")
