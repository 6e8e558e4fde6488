"""Off-site copies through rclone, against a real `rclone serve webdav` on loopback (with a
password kept in the rclone config): copy and check after every backup, list with locations,
pull and restore a backup that only the remote holds, a remote that is down, and one whose
copy is corrupted."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from click.testing import CliRunner
from private_servers import PrivateWebdav

from jamey_engine import oplog
from jamey_engine.cli import cli
from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import ConfigError
from jamey_engine.observability.metrics import build_registry

from .support import change_everything, fill, restored_to, state


@pytest.fixture
def webdav(tmp_path: Path) -> Iterator[PrivateWebdav]:
    server = PrivateWebdav(tmp_path / "webdav")
    server.start()
    yield server
    server.stop()


def offsite_env(engine: Engine, server: PrivateWebdav) -> dict[str, str]:
    return {
        "JAMEY_DATA_DIR": str(engine.settings.data_dir),
        "JAMEY_BACKUP_REMOTE": "store:backups",
        "JAMEY_RCLONE_CONFIG": str(server.config),
    }


@pytest.fixture
def offsite(engine: Engine, webdav: PrivateWebdav) -> Iterator[Engine]:
    """An engine whose backups go off-site to the webdav server."""
    engine.close()
    copied = Engine(Settings.from_env(offsite_env(engine, webdav)))
    yield copied
    copied.close()


def metric(engine: Engine, name: str, labels: dict[str, str] | None = None) -> float | None:
    return build_registry(engine).get_sample_value(name, labels or {})  # type: ignore[no-any-return]


def cli_json(engine: Engine, server: PrivateWebdav, *args: str) -> Any:
    env = offsite_env(engine, server)
    done = CliRunner().invoke(cli, ["backup", *args], env=env)
    assert done.exit_code == 0, done.output
    return json.loads(done.output) if "--json" in args else done.output


def test_every_backup_is_copied_checked_and_listed_with_its_location(
    offsite: Engine, webdav: PrivateWebdav
) -> None:
    fill(offsite, per_layer=3)
    backup = offsite.vault.create()
    assert backup.location == "both" and backup.remote_checked_at is not None
    stored = webdav.root / "backups"
    assert (stored / backup.path.name).read_bytes() == backup.path.read_bytes()
    remote_entry = json.loads((stored / f"{backup.id}.json").read_text())
    assert remote_entry["remote"]["status"] == "ok" and remote_entry["signature"]
    listed = cli_json(offsite, webdav, "list", "--json")
    assert [(b["id"], b["location"]) for b in listed] == [(backup.id, "both")]
    assert metric(offsite, "backup_remote_copies_total", {"status": "success"}) == 1
    last = metric(offsite, "backup_last_remote_success_timestamp_seconds")
    assert last is not None and abs(last - utcnow().timestamp()) < 600
    assert metric(offsite, "backup_remote_configured") == 1


def test_a_backup_only_on_the_remote_is_listed_pulled_and_restored(
    offsite: Engine, webdav: PrivateWebdav, tmp_path: Path
) -> None:
    fill(offsite, per_layer=3)
    before = state(offsite, tmp_path)
    backup = offsite.vault.create()
    change_everything(offsite)
    changed = state(offsite, tmp_path)
    for path in offsite.settings.backup_dir.iterdir():  # the local disk's backups are lost
        path.unlink()
    offsite.close()
    listed = cli_json(offsite, webdav, "list", "--json")
    assert [(b["id"], b["location"]) for b in listed] == [(backup.id, "remote")]
    assert listed[0]["documents"] == backup.documents

    done = CliRunner().invoke(
        cli, ["backup", "restore", backup.id, "--yes", "--reenable-keys"], env=offsite_env(offsite, webdav)
    )
    assert done.exit_code == 0, done.output
    reopened = Engine(Settings.from_env(offsite_env(offsite, webdav)))
    try:
        assert restored_to(state(reopened, tmp_path), before) and before != changed
        info = reopened.vault.get(backup.id)
        assert info.status == "ok" and info.location == "both"
        pulls = oplog.recent_operations(reopened.db, kind="pull")
        assert [(p["status"], p["detail"]) for p in pulls] == [("success", backup.id)]

        reopened.vault.delete(backup.id)  # and `jamey backup pull` by itself
        pulled = cli_json(reopened, webdav, "pull", backup.id)
        assert "pulled and verified" in pulled and reopened.vault.get(backup.id).status == "ok"
    finally:
        reopened.close()


def test_a_remote_down_during_a_backup_leaves_the_backup_local_and_the_copy_retried_with_backoff(
    offsite: Engine, webdav: PrivateWebdav, caplog: pytest.LogCaptureFixture
) -> None:
    fill(offsite, per_layer=3)
    webdav.stop()
    with caplog.at_level(logging.DEBUG):
        backup = offsite.vault.create()
    assert backup.status == "unverified" and backup.location == "local"
    assert backup.problem is not None and backup.problem.startswith("off-site copy failed:")
    secrets = (webdav.password, str(webdav.config), "127.0.0.1:")
    assert not any(secret in backup.problem for secret in secrets[:2])
    assert not any(secret in caplog.text for secret in secrets[:2])
    assert metric(offsite, "backup_remote_copies_total", {"status": "failure"}) == 1
    assert metric(offsite, "backup_last_remote_success_timestamp_seconds") is None
    assert offsite.vault.push() == {}, "not due yet: the next attempt backs off"

    webdav.start()
    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True):
        retried = offsite.vault.push()
    assert retried[backup.id]["status"] == "ok" and retried[backup.id]["attempts"] == 2
    assert offsite.vault.get(backup.id).location == "both"
    assert metric(offsite, "backup_remote_copies_total", {"status": "success"}) == 1
    assert metric(offsite, "backup_last_remote_success_timestamp_seconds") is not None


def test_a_remote_copy_that_differs_from_the_archive_is_caught_by_the_check(
    offsite: Engine, webdav: PrivateWebdav
) -> None:
    fill(offsite, per_layer=3)
    webdav.stop()
    backup = offsite.vault.create()
    # The remote already holds a copy of the same name, size and time with one byte flipped:
    # rclone's own size-and-time comparison skips the upload, only our hash check can see it.
    stored = webdav.root / "backups"
    stored.mkdir(parents=True, exist_ok=True)
    damaged = bytearray(backup.path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    (stored / backup.path.name).write_bytes(bytes(damaged))
    stat = backup.path.stat()
    os.utime(stored / backup.path.name, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    webdav.start()
    states = offsite.vault.push(force=True)
    assert states[backup.id]["status"] == "failed"
    assert "differs from the local archive" in states[backup.id]["error"]
    assert offsite.vault.get(backup.id).location == "local"


def test_an_rclone_config_that_others_can_read_is_refused(engine: Engine, webdav: PrivateWebdav) -> None:
    webdav.config.chmod(0o644)
    engine.close()
    exposed = Engine(Settings.from_env(offsite_env(engine, webdav)))
    try:
        fill(exposed, per_layer=1)
        backup = exposed.vault.create()  # the backup itself succeeds
        assert backup.location == "local"
        assert backup.problem is not None and "JAMEY_RCLONE_CONFIG" in backup.problem
        with pytest.raises(ConfigError, match="chmod 600"):
            exposed.vault.pull("20260101T000000Z-abcdef")
    finally:
        exposed.close()
