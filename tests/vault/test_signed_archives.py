"""Signed, bounded archives: a forged backup is refused before anything is unpacked, an unsigned
one needs --trust-unsigned, and a member bigger than the signed manifest says stops a restore
at its header (a zstd bomb cannot fill the disk the data shares)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import make_settings

from jamey_engine import oplog
from jamey_engine.cli import cli
from jamey_engine.engine import Engine
from jamey_engine.errors import BackupCorrupt, BackupUnsigned, ConfigError
from jamey_engine.vault import verify as verify_module
from jamey_engine.vault.archive import CHUNK, ArchiveWriter, scan_archive
from jamey_engine.vault.catalog import RESTORE_STAGING_PREFIX
from jamey_engine.vault.manifest import DATABASE_NAME, MANIFEST_NAME, SIGNATURE_NAME

from .support import change_everything, fill, restored_to, state
from .test_encryption import AgeKey, engine_with, make_key  # noqa: F401 (the fixture)

Extractions = list[Path]


@pytest.fixture
def extractions(monkeypatch: pytest.MonkeyPatch) -> Extractions:
    """Every directory the vault began unpacking an archive into (its extraction pass)."""
    seen: Extractions = []
    real = verify_module.scan_archive

    def watched(path: Path, **kwargs: Any) -> Any:
        if kwargs.get("extract_to") is not None:
            seen.append(kwargs["extract_to"])
        return real(path, **kwargs)

    monkeypatch.setattr(verify_module, "scan_archive", watched)
    return seen


def staging_left(engine: Engine) -> list[str]:
    return [p.name for p in engine.settings.data_dir.iterdir() if p.name.startswith(RESTORE_STAGING_PREFIX)]


def unpack(archive: Path, into: Path, identity: Path | None = None) -> None:
    """Unpack a backup with the standard tools, as whoever found it in the backup directory would."""
    into.mkdir()
    if identity is None:
        subprocess.run(["tar", "--zstd", "-x", "-f", str(archive), "-C", str(into)], check=True)
        return
    command = f"age -d -i {identity} {archive} | tar --zstd -x -C {into}"
    subprocess.run(command, shell=True, check=True)  # noqa: S602 (a shell pipeline is the point)


def test_a_backup_is_signed_with_a_private_key_kept_outside_the_backups(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=2)
    backup = engine.vault.create()
    key_file = engine.settings.data_dir / "backup-signing.key"
    assert engine.settings.backup_signing_key_file == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not key_file.is_relative_to(engine.settings.backup_dir)
    names = [member.name for member in scan_archive(backup.path).members]
    assert names[-2:] == [MANIFEST_NAME, SIGNATURE_NAME]
    assert backup.signed and engine.vault.get(backup.id).signed
    record = json.loads((engine.settings.backup_dir / f"{backup.id}.json").read_text())["signature"]
    assert record["algorithm"] == "HMAC-SHA256"
    assert key_file.read_text().strip() not in json.dumps(record)
    assert engine.vault.create().signed  # the same key, read again
    assert len(key_file.read_text().split()) == 1


def test_a_signing_key_file_inside_the_backup_directory_is_refused(tmp_path: Path) -> None:
    inside = tmp_path / "data" / "backups" / "signing.key"
    settings = make_settings(tmp_path / "data", JAMEY_BACKUP_SIGNING_KEY_FILE=str(inside))
    engine = Engine(settings)
    try:
        with pytest.raises(ConfigError, match=r"JAMEY_BACKUP_SIGNING_KEY_FILE.*inside the backup directory"):
            engine.vault.create()
        assert engine.vault.list() == [] and not inside.exists()
    finally:
        engine.close()


@pytest.mark.parametrize("sidecar", ["left as it was", "forged, old signature", "forged, unsigned"])
def test_a_forged_encrypted_archive_holding_an_attackers_admin_key_is_refused_before_anything_is_written(
    engine: Engine,
    make_key: Callable[[str], AgeKey],  # noqa: F811
    tmp_path: Path,
    extractions: Extractions,
    sidecar: str,
) -> None:
    key = make_key("ops")
    secured = engine_with(
        engine.settings,
        JAMEY_BACKUP_RECIPIENTS=key.recipient,
        JAMEY_BACKUP_IDENTITY_FILE=str(key.identity_file),
    )
    try:
        fill(secured, per_layer=3)
        backup = secured.vault.create()
        # The attacker: unpack, add an admin key of theirs, recompute the manifest's hashes,
        # pack again and encrypt to the (public) recipient.
        layout = tmp_path / "forged"
        unpack(backup.path, layout, key.identity_file)
        dump = json.loads((layout / DATABASE_NAME).read_text())
        theirs = dict(next(row for row in dump["tables"]["api_keys"] if "admin" in str(row["scopes"])))
        theirs.update(id="attacker0000000000000000000000ff", name="attacker", secret_hash="0" * 64)
        dump["tables"]["api_keys"].append(theirs)
        (layout / DATABASE_NAME).write_text(json.dumps(dump))
        manifest = json.loads((layout / MANIFEST_NAME).read_text())
        for entry in manifest["files"]:
            data = (layout / entry["path"]).read_bytes()
            entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        manifest["tables"]["api_keys"] += 1
        manifest["keys"] += 1
        (layout / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        members = "database.json memory manifest.json manifest.sig"
        if sidecar == "forged, unsigned":
            (layout / SIGNATURE_NAME).unlink()
            members = "database.json memory manifest.json"
        pack = f"tar --zstd -c -C {layout} {members} | age -r {key.recipient} -o {backup.path}"
        subprocess.run(pack, shell=True, check=True)  # noqa: S602
        entry_path = secured.settings.backup_dir / f"{backup.id}.json"
        if sidecar != "left as it was":
            entry = json.loads(entry_path.read_text())
            entry["manifest"], entry["archive_size"] = manifest, backup.path.stat().st_size
            if sidecar == "forged, unsigned":
                del entry["signature"]
            entry_path.write_text(json.dumps(entry))

        change_everything(secured)
        before = state(secured, tmp_path)
        with pytest.raises((BackupCorrupt, BackupUnsigned)) as refused:
            secured.vault.restore(backup.id, safety_backup=False)
        assert extractions == [], "nothing of a forged archive may be unpacked"
        assert staging_left(secured) == []
        assert state(secured, tmp_path) == before
        assert "attacker" not in {info.name for info in secured.keys.list()}
        assert "\n" not in refused.value.message
        with pytest.raises((BackupCorrupt, BackupUnsigned)):
            secured.vault.verify(backup.id)
    finally:
        secured.close()


def strip_signature(engine: Engine, backup_id: str, tmp_path: Path) -> None:
    """Make ``backup_id`` look like a backup taken before signing: no manifest.sig anywhere."""
    archive = engine.vault.catalog.archive_path(backup_id)
    layout = tmp_path / f"old-{backup_id}"
    unpack(archive, layout)
    subprocess.run(
        [
            "tar",
            "--zstd",
            "-c",
            "-f",
            str(archive),
            "-C",
            str(layout),
            DATABASE_NAME,
            "memory",
            MANIFEST_NAME,
        ],
        check=True,
    )
    entry_path = engine.vault.catalog.sidecar_path(backup_id)
    entry = json.loads(entry_path.read_text())
    del entry["signature"]
    entry["archive_size"] = archive.stat().st_size
    entry_path.write_text(json.dumps(entry))


def test_an_unsigned_backup_is_refused_in_one_line_and_restores_with_trust_unsigned_recorded(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=3)
    before = state(engine, tmp_path)
    backup = engine.vault.create()
    strip_signature(engine, backup.id, tmp_path)
    assert not engine.vault.get(backup.id).signed
    change_everything(engine)
    changed = state(engine, tmp_path)
    engine.close()

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--data-dir", str(engine.settings.data_dir), "backup", *args])

    for refused in (run("verify", backup.id), run("restore", backup.id, "--yes")):
        assert refused.exit_code != 0, refused.output
        lines = [line for line in refused.output.splitlines() if "Traceback" in line or "unsigned" in line]
        assert any("is unsigned" in line and "--trust-unsigned" in line for line in lines), refused.output
        assert not any("Traceback" in line for line in lines)
    reopened = Engine(engine.settings)
    try:
        assert state(reopened, tmp_path) == changed
    finally:
        reopened.close()

    verified = run("verify", backup.id, "--trust-unsigned")
    assert verified.exit_code == 0, verified.output
    restored = run("restore", backup.id, "--yes", "--reenable-keys", "--trust-unsigned")
    assert restored.exit_code == 0, restored.output
    reopened = Engine(engine.settings)
    try:
        assert restored_to(state(reopened, tmp_path), before)
        restores = oplog.recent_operations(reopened.db, kind="restore")
        assert restores[0]["status"] == "success" and "trust-unsigned" in str(restores[0]["detail"])
        assert restores[0]["actor"] == "cli"
        assert "is unsigned" in str(restores[1]["detail"])  # the refused attempt
        verifies = oplog.recent_operations(reopened.db, kind="verify")
        assert [v["detail"] for v in verifies] == [f"{backup.id}: trusted unsigned"]
    finally:
        reopened.close()


def test_a_backup_signed_under_another_key_is_refused_naming_both_keys(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=2)
    backup = engine.vault.create()
    key_file = engine.settings.backup_signing_key_file
    key_file.write_text(os.urandom(32).hex() + "\n")
    with pytest.raises(BackupCorrupt, match="signature does not match the server's signing key") as refused:
        engine.vault.verify(backup.id)
    assert refused.value.file == SIGNATURE_NAME and "signed under key" in refused.value.message
    assert engine.vault.get(backup.id).status == "corrupt"


def write_oversized(
    archive: Path, name: str, extra: int, members: dict[str, bytes], tail: dict[str, bytes]
) -> None:
    """Rewrite ``archive`` with member ``name`` followed by ``extra`` zero bytes (a few KB of
    zstd for a gigabyte of zeros), keeping the signed manifest and signature as they were."""
    with open(archive, "wb") as out:
        writer = ArchiveWriter(out)
        for member, data in members.items():
            if member != name:
                writer.add_bytes(member, data, 0)
                continue
            size = len(data) + extra
            writer._header(member, size, 0)
            writer._stream.write(data)
            zeros = bytes(CHUNK)
            left = extra
            while left:
                step = min(left, CHUNK)
                writer._stream.write(zeros[:step])
                left -= step
            writer._written += size
            writer._pad(size)
        for member, data in tail.items():
            writer.add_bytes(member, data, 0)
        writer.finish()


@pytest.fixture
def small_data_engine(tmp_path: Path, tmpfs: Any) -> Iterator[Engine]:
    """An engine whose data dir is a real 48 MiB tmpfs (backups kept elsewhere)."""
    data = tmpfs(tmp_path / "small-data", "48m")
    engine = Engine(make_settings(data, JAMEY_BACKUP_DIR=str(tmp_path / "backups")))
    yield engine
    engine.close()


@pytest.mark.parametrize(
    ("member", "extra"),
    [(DATABASE_NAME, 1 << 30), ("memory/working", 4096)],
    ids=["zstd bomb: a gigabyte of zeros behind database.json", "a memory file 4 KB larger than declared"],
)
def test_a_member_larger_than_the_signed_manifest_declares_stops_the_restore_at_its_header(
    small_data_engine: Engine, tmp_path: Path, extractions: Extractions, member: str, extra: int
) -> None:
    engine = small_data_engine
    fill(engine, per_layer=4)
    backup = engine.vault.create()
    unpacked = tmp_path / "unpacked"
    result = scan_archive(backup.path, extract_to=unpacked)
    members = {
        m.name: (unpacked / m.name).read_bytes()
        for m in result.members
        if m.name not in (MANIFEST_NAME, SIGNATURE_NAME)
    }
    target = next(name for name in members if name.startswith(member))
    tail = {MANIFEST_NAME: result.manifest or b"", SIGNATURE_NAME: result.signature or b""}
    write_oversized(backup.path, target, extra, members, tail)
    assert backup.path.stat().st_size < 1 << 20
    change_everything(engine)
    before = state(engine, tmp_path)
    free = os.statvfs(engine.settings.data_dir)
    with pytest.raises(BackupCorrupt) as refused:
        engine.vault.restore(backup.id, safety_backup=False)
    declared = len(members[target])
    assert refused.value.file == target
    assert (
        f"{target} is {declared + extra} bytes but the signed manifest declares {declared}"
        in refused.value.message
    )
    assert extractions == [] and staging_left(engine) == []
    assert state(engine, tmp_path) == before
    after = os.statvfs(engine.settings.data_dir)
    assert after.f_bfree * after.f_frsize >= free.f_bfree * free.f_frsize - (1 << 20)
    with pytest.raises(BackupCorrupt, match="declares"):
        engine.vault.verify(backup.id)
