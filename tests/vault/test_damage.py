"""A flipped byte: verify fails naming the file, restore refuses, the live data is untouched."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from jamey_engine.engine import Engine
from jamey_engine.errors import BackupCorrupt, NotFound
from jamey_engine.oplog import operation_summary

from .support import fill, state


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def rewrite_member(path: Path, name: str) -> None:
    """Change one byte inside member ``name`` and recompress: the archive opens, one checksum is wrong."""
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read()
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as source,
        tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as target,
    ):
        for member in source:
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == name:
                data = data[:-1] + bytes([data[-1] ^ 0x01])
            target.addfile(member, io.BytesIO(data))
    path.write_bytes(zstandard.ZstdCompressor().compress(out.getvalue()))


def test_a_flipped_byte_fails_verify_naming_a_file_and_restore_refuses(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=40)
    backup = engine.vault.create()
    names = {entry for entry in _manifest_files(engine, backup.id)}
    flip_byte(backup.path, backup.size_bytes // 2)
    engine.memory.store("episodic", "written after the backup")
    live = state(engine, tmp_path)

    with pytest.raises(BackupCorrupt) as caught:
        engine.vault.verify(backup.id)
    assert caught.value.file in names | {"archive"}
    assert caught.value.file in caught.value.message
    assert engine.vault.get(backup.id).status == "corrupt"

    with pytest.raises(BackupCorrupt):
        engine.vault.restore(backup.id)
    assert state(engine, tmp_path) == live
    assert [info.id for info in engine.vault.list()] == [backup.id]  # no safety backup was needed
    assert not [p for p in engine.settings.data_dir.iterdir() if p.name.startswith(".restore-")]
    assert operation_summary(engine.db).counts[("restore", "failure")] == 1


@pytest.mark.parametrize("member", ["database.json", "manifest.json", "memory"])
def test_a_damaged_member_is_named_exactly(engine: Engine, member: str) -> None:
    fill(engine, per_layer=3)
    backup = engine.vault.create()
    files = _manifest_files(engine, backup.id)
    name = next(f for f in files if f.startswith("memory/")) if member == "memory" else member
    rewrite_member(backup.path, name)
    with pytest.raises(BackupCorrupt) as caught:
        engine.vault.verify(backup.id)
    assert caught.value.file == name


def test_a_truncated_backup_is_reported_and_refused(engine: Engine, tmp_path: Path) -> None:
    fill(engine, per_layer=3)
    backup = engine.vault.create()
    data = backup.path.read_bytes()
    backup.path.write_bytes(data[: len(data) - 100])
    assert engine.vault.get(backup.id).status == "corrupt"  # the size alone gives it away in the list
    live = state(engine, tmp_path)
    with pytest.raises(BackupCorrupt):
        engine.vault.restore(backup.id)
    assert state(engine, tmp_path) == live


def test_verify_of_an_intact_backup_marks_it_ok(engine: Engine) -> None:
    fill(engine, per_layer=3)
    backup = engine.vault.create()
    assert backup.status == "unverified"
    seen: list[tuple[int, int, str]] = []
    checked = engine.vault.verify(
        backup.id, progress=lambda done, total, stage: seen.append((done, total, stage))
    )
    assert checked.status == "ok" and checked.verified_at is not None
    assert seen and seen[-1][0] == seen[-1][1] == backup.size_bytes


def test_a_backup_whose_catalog_entry_is_lost_is_rebuilt_by_verify(engine: Engine) -> None:
    fill(engine, per_layer=3)
    backup = engine.vault.create()
    engine.vault.catalog.sidecar_path(backup.id).unlink()
    assert engine.vault.get(backup.id).status == "unverified"
    assert engine.vault.verify(backup.id).documents == backup.documents


def test_unknown_backups_are_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="20200101T000000Z-abcdef"):
        engine.vault.verify("20200101T000000Z-abcdef")


def _manifest_files(engine: Engine, backup_id: str) -> list[str]:
    manifest = engine.vault.catalog.sidecar_manifest(backup_id)
    assert manifest is not None
    return [entry.path for entry in manifest.files] + ["manifest.json"]
