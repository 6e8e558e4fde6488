"""`jamey doctor` finds each problem it claims to find, on a data dir broken in that way, and
changes nothing while it looks."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from alembic import command
from click.testing import CliRunner
from helpers import closed_port, make_settings

from jamey_engine import doctor
from jamey_engine.cli import cli
from jamey_engine.config import Settings
from jamey_engine.db import alembic_config
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.thresholds import BACKUP_MAX_AGE

NOBODY = 65534


def findings(settings: Settings, check: str) -> list[doctor.Finding]:
    report = doctor.run(settings)
    return [finding for finding in report.findings if finding.check == check]


def only(settings: Settings, check: str) -> doctor.Finding:
    found = findings(settings, check)
    assert len(found) == 1, doctor.run(settings).findings
    return found[0]


@pytest.fixture
def used(engine: Engine) -> Iterator[Engine]:
    """A data dir in use: memories, a key, a database at the newest migration, one backup."""
    engine.memory.store("working", "remember the milk")
    engine.keys.create("ops", scopes=("admin",))
    engine.vault.create()
    engine.close()
    yield engine


def test_a_healthy_data_dir_needs_nothing(used: Engine, tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    done = subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True)
    recipient = done.stderr.strip().removeprefix("Public key: ")
    settings = make_settings(used.settings.data_dir, JAMEY_BACKUP_RECIPIENTS=recipient)
    Engine(settings).vault.create()
    report = doctor.run(settings)
    assert not report.needs_action, report.findings
    statuses = {finding.check: finding.status for finding in report.findings}
    assert statuses["data dir permissions"] == "ok"
    assert statuses["database version"] == "ok"
    assert statuses["layer working"] == "ok"
    assert statuses["backup encryption"] == "ok"
    assert statuses["unencrypted backups"] == "warning"  # the first backup predates the key


def test_it_finds_a_group_or_world_accessible_data_dir(used: Engine) -> None:
    data_dir = used.settings.data_dir
    data_dir.chmod(0o750)
    finding = only(used.settings, "data dir permissions")
    assert finding.status == "problem" and "mode 0750" in finding.detail
    assert finding.fix == f"chmod 700 {data_dir}"
    allowed = make_settings(data_dir, JAMEY_ALLOW_SHARED_DATA_DIR="1")
    assert only(allowed, "data dir permissions").status == "warning"


def test_it_finds_files_others_can_read_and_files_of_another_owner(used: Engine) -> None:
    data_dir = used.settings.data_dir
    (data_dir / "jamey.db").chmod(0o644)
    finding = only(used.settings, "data dir contents")
    assert finding.status == "problem" and f"{data_dir / 'jamey.db'} 0644" in finding.detail
    assert finding.fix == f"chmod -R go-rwx {data_dir}"
    os.chown(data_dir / "jamey.db", NOBODY, NOBODY)
    owned = only(used.settings, "data dir ownership")
    assert owned.status == "problem" and "belong to another user" in owned.detail
    os.chown(data_dir, NOBODY, NOBODY)
    assert only(used.settings, "data dir owner").status == "problem"


def test_it_finds_a_shared_backup_dir_outside_the_data_dir(data_dir: Path, tmp_path: Path) -> None:
    backups = tmp_path / "elsewhere"
    settings = make_settings(data_dir, JAMEY_BACKUP_DIR=str(backups))
    engine = Engine(settings)
    engine.vault.create()
    engine.close()
    backups.chmod(0o755)
    next(backups.glob("*.json")).chmod(0o644)
    assert only(settings, "backup dir permissions").status == "problem"
    assert only(settings, "backup dir contents").status == "problem"


def test_it_finds_a_filesystem_nearly_full(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=700", "tmpfs", str(mount)], check=True)
    try:
        settings = make_settings(mount / "data")
        finding = only(settings, "free space")
        assert finding.status == "problem" and "GiB free of 0.0 GiB" in finding.detail
        assert not (mount / "data").exists()  # read-only: nothing created
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_it_finds_a_database_behind_the_newest_migration_without_upgrading_it(data_dir: Path) -> None:
    url = f"sqlite:///{data_dir / 'jamey.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
    settings = make_settings(data_dir)
    finding = only(settings, "database version")
    assert finding.status == "problem" and "at migration 0001" in finding.detail
    assert finding.fix == "jamey db upgrade"
    with engine.connect() as conn:  # still behind: the doctor only looked
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    engine.dispose()


def test_it_finds_an_unreachable_database_and_a_missing_one(data_dir: Path) -> None:
    down = make_settings(
        data_dir, JAMEY_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x"
    )
    finding = only(down, "database")
    assert finding.status == "problem" and "postgres@127.0.0.1" in finding.detail
    missing = only(make_settings(data_dir), "database")
    assert missing.status == "warning" and "does not exist yet" in missing.detail
    assert not (data_dir / "jamey.db").exists()


def test_it_finds_a_damaged_layer(used: Engine) -> None:
    meta = next((used.settings.memory_dir / "episodic").rglob("meta.json"))
    meta.unlink()
    finding = only(used.settings, "layer episodic")
    assert finding.status == "problem" and "episodic" in finding.detail
    assert only(used.settings, "layer working").status == "ok"


def test_it_finds_no_backup_an_old_backup_and_a_corrupt_one(engine: Engine) -> None:
    settings = engine.settings
    none = only(settings, "backups")
    assert none.status == "warning" and none.fix == "jamey backup create"
    backup = engine.vault.create()
    engine.close()
    assert only(settings, "backups").status == "ok"
    # The alert's rule (thresholds.BACKUP_MAX_AGE), whatever the schedule.
    with time_machine.travel(utcnow() + BACKUP_MAX_AGE - timedelta(hours=1), tick=False):
        assert only(settings, "backups").status == "ok"
    with time_machine.travel(utcnow() + BACKUP_MAX_AGE + timedelta(hours=1), tick=False):
        old = only(settings, "backups")
    assert old.status == "warning" and "older than 1d2h: JameyBackupTooOld fires" in old.detail
    with backup.path.open("ab") as handle:
        handle.write(b"junk")
    corrupt = only(settings, "backups")
    assert corrupt.status == "problem" and "bytes were written" in corrupt.detail


def test_it_finds_unencrypted_backups_bad_key_settings_and_readable_key_files(
    used: Engine, tmp_path: Path
) -> None:
    data_dir = used.settings.data_dir
    plain = only(used.settings, "backup encryption")
    assert plain.status == "warning" and "JAMEY_BACKUP_RECIPIENTS" in (plain.fix or "")
    bad = only(make_settings(data_dir, JAMEY_BACKUP_RECIPIENTS="age1nope"), "backup encryption")
    assert bad.status == "problem" and "JAMEY_BACKUP_RECIPIENTS" in bad.detail
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, check=True)
    key.chmod(0o644)
    settings = make_settings(data_dir, JAMEY_BACKUP_IDENTITY_FILE=str(key))
    readable = only(settings, "key file permissions")
    assert readable.status == "problem" and readable.fix == f"chmod 600 {key}"
    assert "AGE-SECRET-KEY" not in json.dumps(doctor.run(settings).to_dict())


def test_the_cli_exits_1_on_a_problem_0_on_warnings_and_looks_at_a_shared_dir_without_refusing(
    used: Engine,
) -> None:
    data_dir = used.settings.data_dir
    runner = CliRunner()
    fine = runner.invoke(cli, ["--data-dir", str(data_dir), "doctor"])
    assert fine.exit_code == 0, fine.output  # warnings only (no encryption)
    assert "WARN  backup encryption" in fine.output and "nothing needs action" in fine.output
    data_dir.chmod(0o755)
    broken = runner.invoke(cli, ["--data-dir", str(data_dir), "doctor"])
    assert broken.exit_code == 1, broken.output
    assert f"FAIL  data dir permissions: {data_dir} has mode 0755" in broken.output
    assert f"fix: chmod 700 {data_dir}" in broken.output
    as_json = runner.invoke(cli, ["--data-dir", str(data_dir), "doctor", "--json"])
    assert as_json.exit_code == 1, as_json.output
    payload = json.loads(as_json.output)
    assert payload["needs_action"] is True
    assert {"check", "status", "detail", "fix"} <= set(payload["findings"][0])


def test_the_doctor_creates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "never"
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "doctor"])
    assert result.exit_code == 0, result.output
    assert not data_dir.exists()


def _tree(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file and dir under ``root``: mode, size, modification time and contents.

    A directory's own mtime is left out: its entries are compared one by one, and SQLite's
    transient ``-wal``/``-shm`` files (made by any reader, gone when it closes) touch it.
    """
    found = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        is_file = path.is_file() and not path.is_symlink()
        body = path.read_bytes() if is_file else b""
        found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns if is_file else 0, body)
    return found


def test_the_doctor_changes_nothing_on_a_live_data_dir(used: Engine) -> None:
    """With a service's engine open and writes still in its write-ahead log, a run of the
    doctor (the CLI and its JSON) leaves every file as it was: no flush, no migration, no chmod."""
    settings = make_settings(used.settings.data_dir, JAMEY_FLUSH_INTERVAL="3600")
    live = Engine(settings)
    try:
        live.memory.store("working", "acknowledged, not yet flushed")
        assert list((settings.memory_dir / "working").glob("wal-*.log")), "a write waits in the log"
        (settings.data_dir / "backups").chmod(0o750)  # something for the doctor to report, not fix
        before = _tree(settings.data_dir)
        for args in (["doctor"], ["doctor", "--json"]):
            result = CliRunner().invoke(cli, ["--data-dir", str(settings.data_dir), *args])
            assert result.exit_code in (0, 1), result.output
        assert doctor.run(settings).findings
        after = _tree(settings.data_dir)
        changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
        assert not changed, changed
    finally:
        live.close()


def test_a_check_that_crashes_is_a_problem_naming_the_error_and_the_other_checks_still_run(
    used: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def check_clock(settings: Settings) -> list[doctor.Finding]:
        raise ZeroDivisionError("a bug in a check")

    monkeypatch.setattr(doctor, "CHECKS", (check_clock, *doctor.CHECKS))
    report = doctor.run(used.settings)
    [crashed] = [finding for finding in report.findings if finding.check == "clock"]
    assert (
        crashed.status == "problem"
        and crashed.detail == "the check failed: ZeroDivisionError: a bug in a check"
    )
    assert report.needs_action
    assert {"data dir permissions", "database version", "layer working"} <= {f.check for f in report.findings}
    result = CliRunner().invoke(cli, ["--data-dir", str(used.settings.data_dir), "doctor"])
    assert result.exit_code == 1, result.output
    assert "FAIL  clock: the check failed: ZeroDivisionError: a bug in a check" in result.output
    assert "Traceback" not in result.output


def test_it_reports_unsigned_backups_the_signing_key_and_the_off_site_state(engine: Engine) -> None:
    signed = engine.vault.create()
    assert only(engine.settings, "backup signing").status == doctor.OK
    assert only(engine.settings, "off-site copies").status == doctor.WARNING  # no remote set
    assert findings(engine.settings, "unsigned backups") == []
    sidecar = engine.vault.catalog.sidecar_path(signed.id)
    entry = json.loads(sidecar.read_text())
    del entry["signature"]
    sidecar.write_text(json.dumps(entry))
    unsigned = only(engine.settings, "unsigned backups")
    assert (
        unsigned.status == doctor.WARNING
        and signed.id in unsigned.detail
        and "--trust-unsigned" in unsigned.detail
    )
    engine.settings.backup_signing_key_file.chmod(0o644)
    assert only(engine.settings, "signing key permissions").status == doctor.PROBLEM
    remote = engine.settings.with_overrides(backup_remote="store:backups")
    off_site = only(remote, "off-site copies")
    assert (
        off_site.status == doctor.WARNING
        and f"the newest backup {signed.id} is not on the remote" in off_site.detail
    )


def test_it_mentions_approvals_when_several_people_hold_admin_keys_and_restore_needs_none(
    engine: Engine,
) -> None:
    engine.keys.create("ana", scopes=("admin",))
    engine.keys.create("reader", scopes=("memory:read",))
    settings = engine.settings
    assert findings(settings, "approvals") == []  # one admin: a one-person installation
    second = engine.keys.create("bo", scopes=("admin",))
    hint = only(settings, "approvals")
    assert hint.status == "warning" and "2 people hold admin keys (ana, bo)" in hint.detail
    assert hint.fix is not None and "JAMEY_APPROVALS=restore" in hint.fix
    assert not doctor.run(settings).needs_action  # a hint, not a problem
    engine.keys.revoke(second.info.id)
    assert findings(settings, "approvals") == []  # a revoked key is nobody
    engine.keys.create("cy", scopes=("admin",))
    team = make_settings(settings.data_dir, JAMEY_APPROVALS="restore")
    assert only(team, "approvals").status == "ok"
