"""Backups whose archive disagrees with its own manifest: verify names the member, restore refuses.

Each archive here is rebuilt from a real backup with one thing changed, and every member
that is still listed keeps its true checksum, so only the check under test can catch it. The
rebuilt manifest is signed again with the server's key (as if the server itself had made the
mistake), so the signature check does not hide the check under test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jamey_engine.engine import Engine
from jamey_engine.errors import BackupCorrupt
from jamey_engine.vault.archive import ArchiveWriter, scan_archive
from jamey_engine.vault.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, new_backup_id
from jamey_engine.vault.signing import load_signing_key

from .support import change_everything, fill, state

Edit = Callable[[dict[str, bytes], dict[str, Any]], None]


def rebuild(engine: Engine, backup_id: str, tmp: Path, edit: Edit) -> None:
    """Rewrite the backup's archive in place: ``edit(members, manifest)`` may change both."""
    archive = engine.vault.catalog.archive_path(backup_id)
    unpacked = tmp / f"unpacked-{backup_id}"
    result = scan_archive(archive, extract_to=unpacked)
    skip = {MANIFEST_NAME, SIGNATURE_NAME}
    members = {m.name: (unpacked / m.name).read_bytes() for m in result.members if m.name not in skip}
    manifest = json.loads(result.manifest or b"{}")
    edit(members, manifest)
    signer = load_signing_key(engine.settings)
    signed = Manifest.from_dict(manifest)
    sources = tmp / f"sources-{backup_id}"
    sources.mkdir()
    with open(archive, "wb") as out:
        writer = ArchiveWriter(out)
        for number, (name, data) in enumerate(members.items()):
            source = sources / str(number)
            source.write_bytes(data)
            writer.add_file(source, name)
        writer.add_bytes(MANIFEST_NAME, signed.to_json(), 0)
        writer.add_bytes(SIGNATURE_NAME, signer.signature_bytes(signed), 0)
        writer.finish()
    engine.vault.catalog.write_sidecar(
        signed, archive.stat().st_size, None, "create", signature=signer.sign(signed)
    )


@pytest.fixture
def backup_id(engine: Engine) -> str:
    fill(engine, per_layer=5)
    return engine.vault.create().id


def refused_by_verify_and_restore(engine: Engine, backup_id: str, tmp: Path) -> BackupCorrupt:
    change_everything(engine)
    before = state(engine, tmp)
    with pytest.raises(BackupCorrupt) as verified:
        engine.vault.verify(backup_id)
    with pytest.raises(BackupCorrupt) as restored:
        engine.vault.restore(backup_id, safety_backup=False)
    assert restored.value.file == verified.value.file
    assert state(engine, tmp) == before, "a refused restore changes nothing"
    return verified.value


def test_a_member_missing_from_the_archive_is_named(engine: Engine, backup_id: str, tmp_path: Path) -> None:
    def drop_the_database(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        del members["database.json"]

    rebuild(engine, backup_id, tmp_path, drop_the_database)
    error = refused_by_verify_and_restore(engine, backup_id, tmp_path)
    assert error.file == "database.json"
    assert "database.json is missing" in error.message


def test_a_manifest_naming_another_backup_is_refused(engine: Engine, backup_id: str, tmp_path: Path) -> None:
    other = new_backup_id(engine.vault.get(backup_id).created_at)

    def rename(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        manifest["id"] = other

    rebuild(engine, backup_id, tmp_path, rename)
    error = refused_by_verify_and_restore(engine, backup_id, tmp_path)
    assert error.file == MANIFEST_NAME
    assert f"its manifest names backup {other}" in error.message


def test_a_member_not_in_the_manifest_is_named(engine: Engine, backup_id: str, tmp_path: Path) -> None:
    def smuggle(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        members["memory/working/extra.store"] = b"not listed anywhere"

    rebuild(engine, backup_id, tmp_path, smuggle)
    error = refused_by_verify_and_restore(engine, backup_id, tmp_path)
    assert error.file == "memory/working/extra.store"
    assert "is not in the manifest" in error.message


def test_restore_refuses_rows_that_disagree_with_the_manifest(
    engine: Engine, backup_id: str, tmp_path: Path
) -> None:
    def miscount_keys(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        manifest["tables"]["api_keys"] += 1

    rebuild(engine, backup_id, tmp_path, miscount_keys)
    engine.vault.verify(backup_id)  # every member matches its checksum
    change_everything(engine)
    before = state(engine, tmp_path)
    with pytest.raises(BackupCorrupt, match="table api_keys has 4 rows but the manifest says 5") as refused:
        engine.vault.restore(backup_id, safety_backup=False)
    assert refused.value.file == "database.json"
    assert state(engine, tmp_path) == before


def test_restore_refuses_an_index_that_disagrees_with_the_manifest(
    engine: Engine, backup_id: str, tmp_path: Path
) -> None:
    def miscount_documents(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        manifest["documents"]["episodic"] += 2

    rebuild(engine, backup_id, tmp_path, miscount_documents)
    engine.vault.verify(backup_id)
    change_everything(engine)
    before = state(engine, tmp_path)
    with pytest.raises(
        BackupCorrupt, match="layer episodic: the restored index holds 5 documents but the manifest says 7"
    ) as refused:
        engine.vault.restore(backup_id, safety_backup=False)
    assert refused.value.file == "memory/episodic"
    assert state(engine, tmp_path) == before
