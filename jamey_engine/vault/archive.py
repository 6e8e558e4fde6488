"""The archive format: a streaming tar, compressed with zstd, SHA-256 of every member.

Writing streams each file once: it is read in large chunks, hashed and compressed in the
same pass. Reading streams the archive once: every member is hashed (and, for a restore,
written beneath a staging directory) as it is decompressed, so verifying a backup never
needs the whole archive in memory or on disk twice. The result is a plain ``.tar.zst``
that ``tar --zstd -xf`` opens too; an encrypted backup is that same stream inside an age
file (``crypto.py``), so ``age -d -i key.txt <archive> | tar --zstd -x`` opens it.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import zstandard

from jamey_engine.errors import BackupCorrupt
from jamey_engine.fsutil import fsync_path
from jamey_engine.vault.crypto import BackupKeys, decrypting, is_encrypted
from jamey_engine.vault.manifest import MANIFEST_NAME, SIGNATURE_NAME, FileEntry, Manifest

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
# zstd level 3 (zstd's default): several times faster than gzip -6 at a similar ratio.
LEVEL = 3

OnBytes = Callable[[int], None]


def _ignore(_: int) -> None:
    """The byte counter used when the caller passes none."""


class ArchiveWriter:
    """Writes a ``.tar.zst`` stream into an open binary file, recording a FileEntry per member.

    Call ``add_file``/``add_bytes`` in order, then ``finish``; the caller owns (and fsyncs)
    the file. OSError from the underlying file (ENOSPC, say) propagates unchanged.
    """

    def __init__(self, out: BinaryIO, *, level: int = LEVEL) -> None:
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self._stream = compressor.stream_writer(out, write_size=CHUNK, closefd=False)
        self._buffer = bytearray(CHUNK)
        self._written = 0
        self.entries: list[FileEntry] = []

    def _header(self, name: str, size: int, mtime: float) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = int(mtime)
        info.mode = 0o600
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._stream.write(header)
        self._written += len(header)

    def _pad(self, size: int) -> None:
        remainder = size % BLOCK
        if remainder:
            self._stream.write(bytes(BLOCK - remainder))
            self._written += BLOCK - remainder

    def add_file(self, source: Path, name: str, on_bytes: OnBytes = _ignore) -> FileEntry:
        """Append ``source`` as member ``name``; hash it while copying. Returns its FileEntry.

        Raises RuntimeError if the file changes size while it is read (snapshots are immutable
        hard links, so this means someone wrote into the staging copy).
        """
        with open(source, "rb") as handle:
            stat = os.fstat(handle.fileno())
            size = stat.st_size
            self._header(name, size, stat.st_mtime)
            digest = hashlib.sha256()
            view = memoryview(self._buffer)
            copied = 0
            while copied < size:
                count = handle.readinto(self._buffer)
                if not count:
                    break
                chunk = view[: min(count, size - copied)]
                digest.update(chunk)
                self._stream.write(chunk)
                copied += len(chunk)
                on_bytes(len(chunk))
            if copied != size or handle.read(1):
                raise RuntimeError(f"{source} changed size while it was being backed up")
        self._written += size
        self._pad(size)
        entry = FileEntry(path=name, sha256=digest.hexdigest(), size=size)
        self.entries.append(entry)
        return entry

    def add_bytes(self, name: str, data: bytes, mtime: float) -> FileEntry:
        """Append ``data`` as member ``name``. Returns its FileEntry."""
        self._header(name, len(data), mtime)
        self._stream.write(data)
        self._written += len(data)
        self._pad(len(data))
        entry = FileEntry(path=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        self.entries.append(entry)
        return entry

    def finish(self) -> None:
        """Write the end-of-archive blocks and the zstd frame end (with its content checksum)."""
        trailer = 2 * BLOCK
        total = self._written + trailer
        trailer += (-total) % RECORD
        self._stream.write(bytes(trailer))
        self._stream.flush(zstandard.FLUSH_FRAME)
        self._stream.close()


@dataclass(frozen=True)
class ScannedMember:
    """One member as read back from an archive: name, size and the SHA-256 of its bytes."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ScanResult:
    """What a pass over an archive found: every member in order, and the manifest's bytes."""

    members: list[ScannedMember]
    manifest: bytes | None
    signature: bytes | None = None


MAX_MANIFEST_BYTES = 256 << 20
MAX_SIGNATURE_BYTES = 4096
# After the tar's end-of-archive blocks only padding to a record may follow; a stream that
# goes on decompressing past this is refused (a zstd bomb needs no tar member to fill memory
# or time).
MAX_TRAILING_BYTES = 1 << 20


class _Bounds:
    """Holds every member to what a trusted (signed) manifest declares, checked at its header
    (name, size, not seen before, running total) before a byte of it is written, and its
    SHA-256 as soon as its last byte is read."""

    def __init__(self, manifest: Manifest, archive: str) -> None:
        self.entries = {entry.path: entry for entry in manifest.files}
        self.manifest_size = len(manifest.to_json())
        self.total = manifest.total_bytes
        self.archive = archive
        self.seen: set[str] = set()
        self.done = 0

    def admit(self, name: str, size: int) -> None:
        """Raise BackupCorrupt unless member ``name`` of ``size`` bytes is declared as such."""
        if name in self.seen:
            raise BackupCorrupt(f"backup archive {self.archive}: {name} appears twice", file=name)
        self.seen.add(name)
        if name == MANIFEST_NAME:
            declared = self.manifest_size
        elif name == SIGNATURE_NAME:
            declared = MAX_SIGNATURE_BYTES
            if size <= declared:
                return
        else:
            entry = self.entries.get(name)
            if entry is None:
                raise BackupCorrupt(
                    f"backup archive {self.archive}: {name} is not in the manifest (the signed one); "
                    "stopped before unpacking it",
                    file=name,
                )
            declared = entry.size
            self.done += size
        if size != declared or self.done > self.total:
            raise BackupCorrupt(
                f"backup archive {self.archive}: {name} is {size} bytes but the signed manifest "
                f"declares {declared}; stopped before unpacking it",
                file=name,
            )

    def check_digest(self, name: str, sha256: str) -> None:
        """Raise BackupCorrupt when member ``name``'s bytes differ from the signed manifest."""
        entry = self.entries.get(name)
        if entry is not None and entry.sha256 != sha256:
            raise BackupCorrupt(
                f"backup archive {self.archive}: {name} is damaged (SHA-256 {sha256[:16]}…, "
                f"expected {entry.sha256[:16]}…)",
                file=name,
            )


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path of a member name; raises BackupCorrupt for absolute or ``..`` names."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupCorrupt(f"archive member {name!r} has an unsafe path", file=name)
    return path


def _blame(index: int, current: str | None, expected: Sequence[str]) -> str:
    if current is not None:
        return current
    if index < len(expected):
        return expected[index]
    return "archive"


def scan_archive(
    path: Path,
    *,
    extract_to: Path | None = None,
    keep: Callable[[str], bool] = lambda name: True,
    expected_order: Sequence[str] = (),
    on_progress: Callable[[int, int], None] | None = None,
    keys: BackupKeys | None = None,
    label: str | None = None,
    expected: Manifest | None = None,
) -> ScanResult:
    """Stream through the archive at ``path``, hashing every member, in archive order.

    An age-encrypted archive is decrypted on the fly with ``keys`` (see ``crypto.decrypting``:
    BackupLocked without a usable identity, BackupCorrupt when authentication fails).
    Directory members (as GNU tar writes them) are skipped; ``./name`` is read as ``name``.

    With ``extract_to``, each member for which ``keep(name)`` is true is also written to
    ``extract_to/name`` (directories created as needed). ``expected_order`` (the member
    names from the catalog) only serves to name the damaged file when the damage is in a
    member's header. ``on_progress(compressed_bytes_read, archive_size)`` reports progress.

    With ``expected`` (a manifest whose signature was checked), every member is held to it
    before a byte of it is written: a name it does not list, a size other than the declared
    one, a repeat, or a running total past its total stops the scan at that header; a SHA-256
    that differs stops it at the member's end. Without it, the manifest and its signature are
    only read (capped in size). Data past the tar's end is capped at MAX_TRAILING_BYTES.

    Raises BackupCorrupt naming the member (or "archive") when decompression or the tar
    structure fails; OSError from reading the archive or writing the staging files
    propagates unchanged (disk full while extracting is not damage of the backup).
    """
    # Extracted files are flushed to disk by a helper thread while decompression goes on, so
    # the caller's later fsync (before it switches to them) finds them already clean.
    syncer = ThreadPoolExecutor(1, thread_name_prefix="vault-fsync") if extract_to is not None else None
    pending: list[Future[None]] = []
    try:
        with _opened(path, keys, label or f"backup archive {path.name}") as (raw, position):
            bounds = _Bounds(expected, path.name) if expected is not None else None
            result = _scan(
                path, raw, position, extract_to, keep, expected_order, on_progress, syncer, pending, bounds
            )
    except BaseException:
        if syncer is not None:
            syncer.shutdown(wait=True, cancel_futures=True)
        raise
    if syncer is not None:
        syncer.shutdown(wait=True)
        for future in pending:
            future.result()  # an fsync error (disk full, say) surfaces here
    return result


@contextmanager
def _opened(path: Path, keys: BackupKeys | None, label: str) -> Iterator[tuple[BinaryIO, Callable[[], int]]]:
    """The archive's zstd stream and a function giving the bytes of ``path`` consumed so far."""
    if is_encrypted(path):
        with decrypting(path, keys or BackupKeys(), label) as opened:
            yield opened
        return
    with open(path, "rb") as raw:
        yield raw, raw.tell


def _scan(
    path: Path,
    raw: BinaryIO,
    position: Callable[[], int],
    extract_to: Path | None,
    keep: Callable[[str], bool],
    expected_order: Sequence[str],
    on_progress: Callable[[int, int], None] | None,
    syncer: ThreadPoolExecutor | None,
    pending: list[Future[None]],
    bounds: _Bounds | None,
) -> ScanResult:
    members: list[ScannedMember] = []
    manifest: bytearray | None = None
    signature: bytearray | None = None
    current: str | None = None
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total = os.stat(path).st_size
    decompressor = zstandard.ZstdDecompressor()
    try:
        with decompressor.stream_reader(raw, read_size=CHUNK, read_across_frames=True) as stream:
            tar = tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK)  # noqa: SIM115
            for member in tar:
                if member.isdir():  # GNU tar lists directories ("./", "memory/"): nothing to check
                    folder = PurePosixPath(member.name)
                    if folder.is_absolute() or ".." in folder.parts:
                        safe_member_path(member.name)  # raises, naming it
                    continue
                member.name = safe_member_path(member.name).as_posix()
                current = member.name
                if not member.isfile():
                    raise BackupCorrupt(
                        f"archive member {member.name!r} is not a regular file", file=member.name
                    )
                relative = safe_member_path(member.name)
                source = tar.extractfile(member)
                assert source is not None  # regular files always have a reader
                digest = hashlib.sha256()
                if bounds is not None:
                    bounds.admit(member.name, member.size)
                if member.name == MANIFEST_NAME:
                    if member.size > MAX_MANIFEST_BYTES:
                        raise BackupCorrupt(f"{MANIFEST_NAME} is implausibly large", file=MANIFEST_NAME)
                    manifest = bytearray()
                capture: bytearray | None = manifest if member.name == MANIFEST_NAME else None
                if member.name == SIGNATURE_NAME:
                    if member.size > MAX_SIGNATURE_BYTES:
                        raise BackupCorrupt(f"{SIGNATURE_NAME} is implausibly large", file=SIGNATURE_NAME)
                    signature = capture = bytearray()
                target = None
                if extract_to is not None and keep(member.name):
                    destination = extract_to.joinpath(*relative.parts)
                    written = destination
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    target = open(destination, "wb")  # noqa: SIM115
                try:
                    while True:
                        count = source.readinto(buffer)  # type: ignore[attr-defined]
                        if not count:
                            break
                        digest.update(view[:count])
                        if target is not None:
                            target.write(view[:count])
                        if capture is not None:
                            capture += view[:count]
                        if on_progress is not None:
                            on_progress(position(), total)
                finally:
                    if target is not None:
                        target.close()
                        if syncer is not None:
                            pending.append(syncer.submit(fsync_path, written))
                if bounds is not None:
                    bounds.check_digest(member.name, digest.hexdigest())
                members.append(ScannedMember(member.name, member.size, digest.hexdigest()))
                current = None
            # Read to the end of the zstd stream so its content checksum is checked too.
            trailing = 0
            while count := len(stream.read(CHUNK)):
                trailing += count
                if trailing > MAX_TRAILING_BYTES:
                    raise BackupCorrupt(
                        f"backup archive {path.name} goes on past the end of its tar stream "
                        f"(more than {MAX_TRAILING_BYTES} bytes); refused",
                        file="archive",
                    )
    except (zstandard.ZstdError, tarfile.TarError, EOFError) as err:
        name = _blame(len(members), current, expected_order)
        raise BackupCorrupt(f"backup archive {path.name} is damaged at {name}: {err}", file=name) from None
    if on_progress is not None:
        on_progress(total, total)
    return ScanResult(
        members,
        bytes(manifest) if manifest is not None else None,
        bytes(signature) if signature is not None else None,
    )
