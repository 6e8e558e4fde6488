"""Backup key settings that hold nothing usable, and encryption with nothing to encrypt to:
each a one-line error naming the setting, and nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_settings

from jamey_engine.engine import Engine
from jamey_engine.errors import ConfigError, InvalidInput
from jamey_engine.oplog import recent_operations
from jamey_engine.vault.crypto import BackupKeys, encrypting


def _keys(data_dir: Path, **env: str) -> BackupKeys:
    return BackupKeys.from_settings(make_settings(data_dir, **env))


@pytest.mark.parametrize(
    ("variable", "text", "reason"),
    [
        ("JAMEY_BACKUP_RECIPIENTS", "", "the file holds no age public key"),
        ("JAMEY_BACKUP_RECIPIENTS", "# only a comment\n\n", "the file holds no age public key"),
        ("JAMEY_BACKUP_IDENTITY_FILE", "", "the file holds no age identity"),
        ("JAMEY_BACKUP_IDENTITY_FILE", "# created: today\n", "the file holds no age identity"),
        ("JAMEY_BACKUP_PASSPHRASE_FILE", "\n", "the file is empty"),
    ],
)
def test_a_key_file_holding_no_key_is_refused_naming_the_setting_and_file(
    data_dir: Path, tmp_path: Path, variable: str, text: str, reason: str
) -> None:
    path = tmp_path / "key-file"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        _keys(data_dir, **{variable: str(path)})
    assert refused.value.variable == variable
    assert refused.value.message == f"Setting {variable}={str(path)!r} is invalid: {reason}"


def test_encrypting_with_no_recipient_and_no_passphrase_is_refused_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "archive.age"
    with (
        out.open("wb") as handle,
        pytest.raises(InvalidInput, match="nothing to encrypt to"),
        encrypting(handle, BackupKeys()),
    ):
        pass
    assert out.read_bytes() == b"", "not one byte written"


def test_a_rekey_without_recipients_is_refused_recorded_and_leaves_the_backup(engine: Engine) -> None:
    engine.memory.store("working", "kept in a plain backup")
    backup = engine.vault.create()
    before = backup.path.read_bytes()
    with pytest.raises(
        InvalidInput, match=f"set JAMEY_BACKUP_RECIPIENTS .* re-encrypt backup {backup.id} to"
    ):
        engine.vault.rekey(backup.id, actor="ops")
    assert backup.path.read_bytes() == before and not engine.vault.get(backup.id).encrypted
    [row] = [r for r in recent_operations(engine.db, kind="rekey")]
    assert row["status"] == "failure" and row["actor"] == "ops" and backup.id in str(row["detail"])
