"""Encrypted backups: the age format, round trips on SQLite and PostgreSQL, refusals that change
nothing, authentication before unpacking, key rotation, and the real `age` command both ways."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import make_settings

from jamey_engine.cli import cli
from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.errors import BackupCorrupt, BackupLocked, ConfigError, Unavailable
from jamey_engine.vault.crypto import AGE_MAGIC, BackupKeys

from .support import change_everything, fill, restored_to, state


@dataclass(frozen=True)
class AgeKey:
    """A key pair made by the real age-keygen: the identity file and its public key."""

    identity_file: Path
    recipient: str

    @property
    def secret(self) -> str:
        return next(line for line in self.identity_file.read_text().splitlines() if line.startswith("AGE-"))


@pytest.fixture
def make_key(tmp_path: Path) -> Callable[[str], AgeKey]:
    def make(name: str) -> AgeKey:
        path = tmp_path / "keys" / f"{name}.txt"
        path.parent.mkdir(exist_ok=True)
        done = subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, text=True, check=True)
        return AgeKey(path, done.stderr.strip().removeprefix("Public key: "))

    return make


def engine_with(settings: Settings, **env: str) -> Engine:
    """An engine on the same data dir and database, with these encryption settings."""
    keep = {
        "JAMEY_DATA_DIR": str(settings.data_dir),
        "JAMEY_DATABASE_URL": settings.database_url,
        "JAMEY_BACKUP_DIR": str(settings.backup_dir),
    }
    return Engine(Settings.from_env({**keep, **env}))


def stages(record: list[str]) -> Callable[[int, int, str], None]:
    def progress(done: int, total: int, stage: str) -> None:
        if stage not in record:
            record.append(stage)

    return progress


def test_an_encrypted_round_trip_restores_everything(
    db_settings: Settings, make_key: Callable[[str], AgeKey], tmp_path: Path
) -> None:
    key = make_key("ops")
    engine = engine_with(
        db_settings, JAMEY_BACKUP_RECIPIENTS=key.recipient, JAMEY_BACKUP_IDENTITY_FILE=str(key.identity_file)
    )
    try:
        fill(engine)
        before = state(engine, tmp_path)
        backup = engine.vault.create()
        assert backup.encrypted and backup.path.name == f"{backup.id}.tar.zst.age"
        raw = backup.path.read_bytes()
        assert raw.startswith(AGE_MAGIC)
        assert b"alpha" not in raw and b"manifest.json" not in raw and b"api_keys" not in raw
        change_everything(engine)

        plan = engine.vault.restore(backup.id, reenable_keys=True)

        assert restored_to(state(engine, tmp_path), before)
        safety = engine.vault.get(plan.safety_backup_id or "")
        assert safety.encrypted  # the safety backup is encrypted too
        assert engine.vault.verify(safety.id).status == "ok"
    finally:
        engine.close()


def test_a_restore_with_the_wrong_identity_is_refused_and_changes_nothing(
    db_settings: Settings, make_key: Callable[[str], AgeKey], tmp_path: Path
) -> None:
    right, wrong = make_key("right"), make_key("wrong")
    writer = engine_with(db_settings, JAMEY_BACKUP_RECIPIENTS=right.recipient)
    try:
        fill(writer)
        backup = writer.vault.create()
        change_everything(writer)
        live = state(writer, tmp_path)
    finally:
        writer.close()
    engine = engine_with(db_settings, JAMEY_BACKUP_IDENTITY_FILE=str(wrong.identity_file))
    try:
        listing = sorted(p.name for p in db_settings.backup_dir.iterdir())
        sidecar = (db_settings.backup_dir / f"{backup.id}.json").read_bytes()
        with pytest.raises(BackupLocked) as refused:
            engine.vault.restore(backup.id)
        message = refused.value.message
        assert str(wrong.identity_file) in message and "Nothing was changed" in message
        assert wrong.secret not in message and right.secret not in message
        with pytest.raises(BackupLocked):
            engine.vault.verify(backup.id)
        assert state(engine, tmp_path) == live
        assert sorted(p.name for p in db_settings.backup_dir.iterdir()) == listing  # no safety backup
        assert (db_settings.backup_dir / f"{backup.id}.json").read_bytes() == sidecar  # no verdict
        assert not [p for p in db_settings.data_dir.iterdir() if p.name.startswith(".restore-")]
    finally:
        engine.close()


def test_without_an_identity_verify_and_restore_say_what_to_set_in_one_line(
    engine: Engine, make_key: Callable[[str], AgeKey]
) -> None:
    key = make_key("ops")
    writer = engine_with(engine.settings, JAMEY_BACKUP_RECIPIENTS=key.recipient)
    try:
        fill(writer, per_layer=2)
        backup = writer.vault.create()  # the service can write backups it cannot read back
    finally:
        writer.close()
    engine.close()
    for command in (["verify", backup.id], ["restore", backup.id, "--yes"]):
        result = CliRunner().invoke(cli, ["--data-dir", str(engine.settings.data_dir), "backup", *command])
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            f"error: backup {backup.id} is encrypted; set JAMEY_BACKUP_IDENTITY_FILE to the age identity "
            "file of one of its recipients (or JAMEY_BACKUP_PASSPHRASE_FILE). Nothing was changed"
        ]


def test_a_flipped_byte_is_caught_by_authentication_before_anything_is_unpacked(
    engine: Engine, make_key: Callable[[str], AgeKey], tmp_path: Path
) -> None:
    key = make_key("ops")
    secured = engine_with(
        engine.settings,
        JAMEY_BACKUP_RECIPIENTS=key.recipient,
        JAMEY_BACKUP_IDENTITY_FILE=str(key.identity_file),
    )
    try:
        fill(secured, content_bytes=3000)
        backup = secured.vault.create()
        change_everything(secured)
        live = state(secured, tmp_path)
        raw = bytearray(backup.path.read_bytes())
        # Late in the file: age would release the chunks before it, so only a full
        # authentication pass first keeps them from being unpacked.
        raw[len(raw) * 3 // 4] ^= 0x01
        backup.path.write_bytes(bytes(raw))

        seen: list[str] = []
        with pytest.raises(BackupCorrupt, match="failed age authentication") as caught:
            secured.vault.restore(backup.id, stages(seen), reenable_keys=True)
        assert "authenticating" in seen and "extracting and verifying" not in seen
        assert "nothing was unpacked" in caught.value.message
        assert state(secured, tmp_path) == live
        with pytest.raises(BackupCorrupt):
            secured.vault.verify(backup.id)
        assert secured.vault.get(backup.id).status == "corrupt"
    finally:
        secured.close()


def test_the_age_command_decrypts_a_jamey_backup_and_tar_reads_it(
    engine: Engine, make_key: Callable[[str], AgeKey], tmp_path: Path
) -> None:
    key = make_key("ops")
    secured = engine_with(engine.settings, JAMEY_BACKUP_RECIPIENTS=key.recipient)
    try:
        fill(secured, per_layer=3)
        backup = secured.vault.create()
    finally:
        secured.close()
    out = tmp_path / "unpacked"
    out.mkdir()
    # The emergency procedure of docs/security.md, word for word.
    procedure = f"age -d -i {key.identity_file} {backup.path} | tar --zstd -x -C {out}"
    subprocess.run(procedure, shell=True, check=True)  # noqa: S602 (a shell pipeline is the point)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["id"] == backup.id
    for entry in manifest["files"]:
        data = (out / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
    assert json.loads((out / "database.json").read_text())["tables"]["api_keys"]


def test_jamey_restores_an_archive_made_with_tar_and_age_in_the_documented_layout(
    engine: Engine, make_key: Callable[[str], AgeKey], tmp_path: Path
) -> None:
    key = make_key("ops")
    fill(engine)
    before = state(engine, tmp_path)
    plain = engine.vault.create()
    change_everything(engine)
    # Unpack the plain backup, then pack it again with the standard tools only.
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "--zstd", "-x", "-f", str(plain.path), "-C", str(layout)], check=True)
    plain.path.unlink()
    (engine.settings.backup_dir / f"{plain.id}.json").unlink()
    target = engine.settings.backup_dir / f"{plain.id}.tar.zst.age"
    pack = (
        f"tar --zstd -c -C {layout} database.json memory manifest.json manifest.sig"
        f" | age -r {key.recipient} -o {target}"
    )
    subprocess.run(pack, shell=True, check=True)  # noqa: S602 (a shell pipeline is the point)
    engine.close()
    secured = engine_with(engine.settings, JAMEY_BACKUP_IDENTITY_FILE=str(key.identity_file))
    try:
        listed = secured.vault.get(plain.id)
        assert listed.encrypted and listed.status == "unverified"
        assert secured.vault.verify(plain.id).status == "ok"  # rebuilds the catalog entry
        secured.vault.restore(plain.id, safety_backup=False, reenable_keys=True)
        assert restored_to(state(secured, tmp_path), before)
    finally:
        secured.close()


def test_rotation_new_backups_use_the_new_recipient_old_ones_restore_with_the_old_identity_and_rekey_moves_them(
    engine: Engine, make_key: Callable[[str], AgeKey], tmp_path: Path
) -> None:
    old, new = make_key("old"), make_key("new")
    fill(engine, per_layer=3)
    unencrypted = engine.vault.create()
    first = engine_with(engine.settings, JAMEY_BACKUP_RECIPIENTS=old.recipient)
    try:
        backup_old = first.vault.create()
    finally:
        first.close()
    second = engine_with(engine.settings, JAMEY_BACKUP_RECIPIENTS=new.recipient)
    try:
        backup_new = second.vault.create()
    finally:
        second.close()
    with_old = engine_with(engine.settings, JAMEY_BACKUP_IDENTITY_FILE=str(old.identity_file))
    try:
        assert with_old.vault.verify(backup_old.id).status == "ok"
        with pytest.raises(BackupLocked):
            with_old.vault.verify(backup_new.id)
    finally:
        with_old.close()

    engine.close()
    env = {**_env(engine.settings), "JAMEY_BACKUP_RECIPIENTS": new.recipient}
    env["JAMEY_BACKUP_IDENTITY_FILE"] = str(old.identity_file)
    runner = CliRunner()
    for backup_id in (backup_old.id, unencrypted.id):
        result = runner.invoke(cli, ["backup", "rekey", backup_id], env=env)
        assert result.exit_code == 0, result.output
    assert not (engine.settings.backup_dir / f"{unencrypted.id}.tar.zst").exists()

    with_new = engine_with(engine.settings, JAMEY_BACKUP_IDENTITY_FILE=str(new.identity_file))
    try:
        for backup_id in (backup_old.id, unencrypted.id, backup_new.id):
            info = with_new.vault.verify(backup_id)
            assert info.encrypted and info.status == "ok"
    finally:
        with_new.close()
    listing = runner.invoke(cli, ["backup", "list", "--json"], env=env)
    assert listing.exit_code == 0, listing.output
    assert {row["id"]: row["encrypted"] for row in json.loads(listing.output)} == {
        unencrypted.id: True,
        backup_old.id: True,
        backup_new.id: True,
    }
    table = runner.invoke(cli, ["backup", "list"], env=env)
    assert "ENCRYPTED" in table.output and table.output.count(" age ") == 3, table.output
    # The old identity no longer opens the rekeyed backup.
    with_old = engine_with(engine.settings, JAMEY_BACKUP_IDENTITY_FILE=str(old.identity_file))
    try:
        with pytest.raises(BackupLocked):
            with_old.vault.verify(backup_old.id)
    finally:
        with_old.close()


def test_a_rekey_with_the_wrong_identity_changes_nothing(
    engine: Engine, make_key: Callable[[str], AgeKey]
) -> None:
    old, new, other = make_key("old"), make_key("new"), make_key("other")
    first = engine_with(engine.settings, JAMEY_BACKUP_RECIPIENTS=old.recipient)
    try:
        fill(first, per_layer=2)
        backup = first.vault.create()
    finally:
        first.close()
    before = backup.path.read_bytes()
    rekeying = engine_with(
        engine.settings,
        JAMEY_BACKUP_RECIPIENTS=new.recipient,
        JAMEY_BACKUP_IDENTITY_FILE=str(other.identity_file),
    )
    try:
        with pytest.raises(BackupLocked):
            rekeying.vault.rekey(backup.id)
    finally:
        rekeying.close()
    assert backup.path.read_bytes() == before
    assert sorted(p.name for p in engine.settings.backup_dir.iterdir()) == [
        f"{backup.id}.json",
        f"{backup.id}.tar.zst.age",
    ]


def test_a_passphrase_encrypts_and_restores_and_a_wrong_one_is_refused(
    engine: Engine, tmp_path: Path
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    secured = engine_with(engine.settings, JAMEY_BACKUP_PASSPHRASE_FILE=str(secret))
    try:
        fill(secured, per_layer=3)
        before = state(secured, tmp_path)
        backup = secured.vault.create()
        assert backup.encrypted and backup.path.read_bytes().startswith(AGE_MAGIC)
        change_everything(secured)
        secured.vault.restore(backup.id, safety_backup=False, reenable_keys=True)
        assert restored_to(state(secured, tmp_path), before)
    finally:
        secured.close()
    secret.write_text("wrong horse\n")
    locked = engine_with(engine.settings, JAMEY_BACKUP_PASSPHRASE_FILE=str(secret))
    try:
        with pytest.raises(BackupLocked) as refused:
            locked.vault.verify(backup.id)
        message = refused.value.message
        assert backup.id in message and "cannot be decrypted with the passphrase" in message, message
        assert "JAMEY_BACKUP_PASSPHRASE_FILE" in message and "Nothing was changed" in message, message
        assert "\n" not in message and "horse" not in message, "one line, and no passphrase in it"
        live = state(locked, tmp_path)
        with pytest.raises(BackupLocked, match="cannot be decrypted with the passphrase"):
            locked.vault.restore(backup.id, safety_backup=False)
        assert state(locked, tmp_path) == live, "the refused restore changed nothing"
    finally:
        locked.close()


def test_disk_full_while_encrypting_is_a_clean_error_that_leaves_nothing(
    tmp_path: Path, tmpfs: Callable[[Path, str], Path], make_key: Callable[[str], AgeKey]
) -> None:
    backups = tmpfs(tmp_path / "small", "1m")
    key = make_key("ops")
    engine = Engine(
        make_settings(tmp_path / "data", JAMEY_BACKUP_DIR=str(backups), JAMEY_BACKUP_RECIPIENTS=key.recipient)
    )
    try:
        fill(engine, per_layer=8, content_bytes=40_000)  # ~1.6 MB of incompressible text
        with pytest.raises(Unavailable) as caught:
            engine.vault.create()
        assert caught.value.message.startswith(f"no space left on device while writing backup to {backups}")
        assert os.listdir(backups) == []
        assert engine.vault.list() == []
    finally:
        engine.close()


def test_bad_key_settings_name_the_variable_and_never_the_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"JAMEY_BACKUP_RECIPIENTS.*'age1nope' is not an age public key"):
        BackupKeys.from_settings(make_settings(tmp_path, JAMEY_BACKUP_RECIPIENTS="age1nope"))
    identity = tmp_path / "identity.txt"
    identity.write_text("# a comment\nAGE-SECRET-KEY-1THISISNOTAVALIDKEYBUTLOOKSSECRET\n")
    with pytest.raises(ConfigError) as raised:
        BackupKeys.from_settings(make_settings(tmp_path, JAMEY_BACKUP_IDENTITY_FILE=str(identity)))
    assert "line 2 is not an age identity" in raised.value.message
    assert "THISISNOTAVALIDKEY" not in raised.value.message
    with pytest.raises(ConfigError, match=r"JAMEY_BACKUP_PASSPHRASE_FILE.*cannot read"):
        BackupKeys.from_settings(make_settings(tmp_path, JAMEY_BACKUP_PASSPHRASE_FILE=str(tmp_path / "none")))
    keys_file = tmp_path / "recipients.txt"
    keys_file.write_text("# ops team\nage1" + "q" * 58 + "\n")
    with pytest.raises(ConfigError, match="in file"):
        BackupKeys.from_settings(make_settings(tmp_path, JAMEY_BACKUP_RECIPIENTS=str(keys_file)))


def test_recipients_come_inline_separated_by_commas_or_spaces_or_from_a_file(
    tmp_path: Path, make_key: Callable[[str], AgeKey]
) -> None:
    one, two = make_key("one"), make_key("two")
    for text in (f"{one.recipient},{two.recipient}", f"{one.recipient} {two.recipient}"):
        keys = BackupKeys.from_settings(make_settings(tmp_path, JAMEY_BACKUP_RECIPIENTS=text))
        assert keys.recipient_names == [one.recipient, two.recipient]
    listing = tmp_path / "recipients.txt"
    listing.write_text(f"# ops\n{one.recipient}\n\n{two.recipient}\n")
    keys = BackupKeys.from_settings(make_settings(tmp_path, JAMEY_BACKUP_RECIPIENTS=str(listing)))
    assert keys.recipient_names == [one.recipient, two.recipient]
    assert one.secret not in repr(
        BackupKeys.from_settings(make_settings(tmp_path, JAMEY_BACKUP_IDENTITY_FILE=str(one.identity_file)))
    )


def _env(settings: Settings) -> dict[str, str]:
    return {
        "JAMEY_DATA_DIR": str(settings.data_dir),
        "JAMEY_DATABASE_URL": settings.database_url,
        "JAMEY_BACKUP_DIR": str(settings.backup_dir),
    }
