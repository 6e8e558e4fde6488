"""The .tar.zst format: one streaming pass writes and one reads, hashing every member."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from jamey_engine.errors import BackupCorrupt, InvalidInput
from jamey_engine.vault.archive import MAX_MANIFEST_BYTES, ArchiveWriter, scan_archive
from jamey_engine.vault.manifest import Manifest, check_backup_id, new_backup_id


def write_archive(path: Path, files: dict[str, bytes], tmp: Path) -> None:
    with open(path, "wb") as out:
        writer = ArchiveWriter(out)
        for name, data in files.items():
            source = tmp / hashlib.sha256(name.encode()).hexdigest()
            source.write_bytes(data)
            writer.add_file(source, name)
        writer.add_bytes("manifest.json", b'{"hello": 1}', 0)
        writer.finish()


def test_members_read_back_with_the_checksums_they_were_written_with(tmp_path: Path) -> None:
    files = {
        "database.json": b"{}",
        "memory/long_term/" + "n" * 150 + ".store": os.urandom(3 * 1024 * 1024 + 7),
        "memory/working/meta.json": b"x" * 513,
        "memory/empty": b"",
    }
    archive = tmp_path / "a.tar.zst"
    write_archive(archive, files, tmp_path)
    result = scan_archive(archive, extract_to=tmp_path / "out")
    assert [m.name for m in result.members] == [*files, "manifest.json"]
    for member in result.members[:-1]:
        assert member.sha256 == hashlib.sha256(files[member.name]).hexdigest()
        assert (tmp_path / "out" / member.name).read_bytes() == files[member.name]
    assert result.manifest == b'{"hello": 1}'


def test_the_archive_is_a_plain_tar_zst_that_gnu_tar_lists(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    write_archive(archive, {"memory/short_term/a": b"abc", "database.json": b"[]"}, tmp_path)
    listing = subprocess.run(["tar", "--zstd", "-tf", str(archive)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == ["memory/short_term/a", "database.json", "manifest.json"]


def test_a_truncated_archive_is_reported_as_damaged(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    write_archive(archive, {"memory/long_term/big": os.urandom(200_000)}, tmp_path)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackupCorrupt) as caught:
        scan_archive(archive, expected_order=["memory/long_term/big", "manifest.json"])
    assert caught.value.file == "memory/long_term/big"


def test_a_file_that_is_not_zstd_is_reported_as_damaged(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(b"this is not an archive at all" * 10)
    with pytest.raises(BackupCorrupt) as caught:
        scan_archive(archive)
    assert caught.value.file == "archive"
    assert "a.tar.zst" in caught.value.message


def test_members_with_unsafe_paths_are_refused_and_not_written(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    archive = tmp_path / "evil.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    with pytest.raises(BackupCorrupt) as caught:
        scan_archive(archive, extract_to=tmp_path / "out")
    assert caught.value.file == "../escape"
    assert not (tmp_path / "escape").exists()


def test_backup_ids_sort_by_time_and_reject_paths() -> None:
    from datetime import UTC, datetime

    early = new_backup_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = new_backup_id(datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC))
    assert early.startswith("20260102T030405Z-") and early < late
    assert check_backup_id(early) == early
    with pytest.raises(InvalidInput, match=r"\.\./etc"):
        check_backup_id("../etc")


def test_a_damaged_manifest_names_itself() -> None:
    with pytest.raises(BackupCorrupt) as caught:
        Manifest.from_json(b'{"format_version": 1, "id": "x"')
    assert caught.value.file == "manifest.json"
    with pytest.raises(BackupCorrupt, match="files"):
        Manifest.from_json(b'{"format_version": 1, "id": "20260102T030405Z-abcdef"}')


def _tar_zst(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE], ids=["symlink", "hard-link"])
def test_symlinks_and_hard_links_in_an_archive_are_refused_and_not_written(
    tmp_path: Path, kind: bytes
) -> None:
    regular = tarfile.TarInfo("memory/working/meta.json")
    regular.size = 2
    link = tarfile.TarInfo("memory/working/link.store")
    link.type = kind
    link.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else "memory/working/meta.json"
    archive = tmp_path / "links.tar.zst"
    _tar_zst(archive, [(regular, b"{}"), (link, None)])
    with pytest.raises(BackupCorrupt, match="is not a regular file") as caught:
        scan_archive(archive, extract_to=tmp_path / "out")
    assert caught.value.file == "memory/working/link.store"
    assert not (tmp_path / "out" / "memory" / "working" / "link.store").exists()


def test_a_manifest_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    header = tarfile.TarInfo("manifest.json")
    header.size = MAX_MANIFEST_BYTES + 1
    # Only the header: the cap must refuse it before a single byte of the body is buffered.
    archive = tmp_path / "huge-manifest.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(header.tobuf(tarfile.PAX_FORMAT) + b"\0" * 4096))
    with pytest.raises(BackupCorrupt, match="implausibly large") as caught:
        scan_archive(archive)
    assert caught.value.file == "manifest.json"
