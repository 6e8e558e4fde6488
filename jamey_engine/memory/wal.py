"""The write-ahead log of one layer: framed, checksummed records in numbered segment files.

On disk, under ``memory/<layer>/`` (beside the generation directories)::

    wal-000000000007.log   sealed segments (waiting for a flush) and the active one (highest)
    .wal.lock              flock serializing appends and rotations across processes; its first
                           16 bytes say (active segment, end of its last whole record)
    .wal.flush.lock        flock serializing flushes across processes
    wal.flushed            JSON: the highest segment whose records are all in the index
                           (durable), and flush totals over every process (for /metrics)
    wal.flushing           present while a flush may have committed without removing its
                           segments: the next flush then applies records idempotently

A record is ``MAGIC | length | crc32(payload) | crc32(first 12 bytes)`` then the payload (JSON).
The header has its own checksum, so a flipped length is never mistaken for a torn tail.

Guarantees:
- ``append`` returns once the bytes are written and ``fdatasync``ed: an acknowledged record
  survives a crash of the process or the machine.
- A torn tail (a record cut short by a crash, or zero-filled) is cut before the next append
  and ignored by readers. Anything else that fails a checksum raises LogCorrupt naming the
  layer, the segment and the byte offset: a damaged log is never skipped silently.
- Appends and rotations of one layer are serialized across processes by ``.wal.lock``; if a
  process died mid-append, the next appender notices (the size disagrees with the recorded
  end), checks the records after the recorded end and cuts the tail at the first bad one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jamey_engine.errors import Busy, LogCorrupt, Unavailable
from jamey_engine.fsutil import fsync_path, is_no_space, write_durably

log = logging.getLogger("jamey_engine.memory")

MAGIC = b"JWL1"
HEADER = struct.Struct("<4sIII")  # magic, payload length, payload crc, header crc
HEAD = HEADER.size
MAX_RECORD = 1 << 30
MARKER = struct.Struct("<QQ")  # active segment, end of its last whole record
APPEND_LOCK = ".wal.lock"
FLUSH_LOCK = ".wal.flush.lock"
FLUSHED = "wal.flushed"
FLUSHING = "wal.flushing"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Doc = tuple[str, str, datetime]


def segment_name(seq: int) -> str:
    """The file name of segment ``seq``."""
    return f"wal-{seq:012d}.log"


def segment_seq(name: str) -> int | None:
    """The sequence number in a segment file name, or None for any other name."""
    if name.startswith("wal-") and name.endswith(".log") and name[4:-4].isdigit():
        return int(name[4:-4])
    return None


def is_log_file(name: str) -> bool:
    """True for the log's own files in a layer directory (never index generations)."""
    return (
        segment_seq(name) is not None
        or name in (APPEND_LOCK, FLUSH_LOCK, FLUSHED, FLUSHING)
        or (name.startswith(".wal.") and name.endswith(".tmp"))
    )


def frame(payload: bytes) -> bytes:
    """One record: header then payload."""
    head = struct.pack("<4sII", MAGIC, len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def encode_add(docs: list[Doc]) -> bytes:
    """A record adding memories (all or nothing on replay)."""
    rows = [[memory_id, content, _micros(when)] for memory_id, content, when in docs]
    return frame(json.dumps({"o": "a", "d": rows}, ensure_ascii=False, separators=(",", ":")).encode())


def encode_delete(memory_id: str) -> bytes:
    """A record deleting one memory id."""
    return frame(json.dumps({"o": "d", "i": memory_id}, separators=(",", ":")).encode())


def _micros(when: datetime) -> int:
    delta = when - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The UTC datetime ``micros`` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class Record:
    """One decoded log record: ``adds`` (id, content, timestamp) or one ``delete`` id."""

    segment: int
    offset: int
    adds: list[Doc]
    delete: str | None


def _zeros(data: bytes | memoryview) -> bool:
    return not any(data)


def scan(data: bytes, start: int, layer: str, where: str) -> tuple[list[tuple[int, bytes]], int]:
    """Validate records from ``start``: ([(offset, payload)], end of the last whole record).

    A torn tail (too short, running past the end, or a bad last record followed by nothing
    but zeros) ends the scan; any other damage raises LogCorrupt naming layer, file and offset.
    """
    out: list[tuple[int, bytes]] = []
    pos, size = start, len(data)
    view = memoryview(data)
    while pos < size:
        if size - pos < HEAD:
            break  # torn header
        magic, length, crc, head_crc = HEADER.unpack_from(data, pos)
        if magic != MAGIC or zlib.crc32(view[pos : pos + 12]) != head_crc or length > MAX_RECORD:
            if _zeros(view[pos:]):
                break  # zero-filled tail of an interrupted append
            raise LogCorrupt(
                f"layer {layer!r}: write-ahead log {where} is damaged at byte {pos} (bad record header); "
                "restore a backup or move the file aside",
                where,
            )
        end = pos + HEAD + length
        if end > size:
            break  # torn payload
        payload = bytes(view[pos + HEAD : end])
        if zlib.crc32(payload) != crc:
            if end == size or _zeros(view[end:]):
                break  # the last record, cut short and zero-filled
            raise LogCorrupt(
                f"layer {layer!r}: write-ahead log {where} is damaged at byte {pos} (checksum mismatch); "
                "restore a backup or move the file aside",
                where,
            )
        out.append((pos, payload))
        pos = end
    return out, pos


def decode(segment: int, offset: int, payload: bytes, layer: str, where: str) -> Record:
    """Turn a checked payload into a Record (LogCorrupt if it is not one)."""
    try:
        body = json.loads(payload)
        if body["o"] == "a":
            adds = [(str(i), str(c), from_micros(int(m))) for i, c, m in body["d"]]
            return Record(segment, offset, adds, None)
        if body["o"] == "d":
            return Record(segment, offset, [], str(body["i"]))
    except (ValueError, KeyError, TypeError, OverflowError):
        pass
    raise LogCorrupt(
        f"layer {layer!r}: write-ahead log {where} holds an unreadable record at byte {offset}", where
    )


class LayerLog:
    """The write-ahead log of one layer, shared by every process on the data dir (see module doc)."""

    def __init__(self, directory: Path, layer: str, lock_timeout: float) -> None:
        self.dir = directory
        self.layer = layer
        self.lock_timeout = lock_timeout
        self._fd: int | None = None  # open active segment
        self._seq = 0
        self._lock_fd: int | None = None
        self.appended_bytes = 0
        self._mutex = threading.Lock()  # flock is per open file: threads need their own lock

    # -- locks ------------------------------------------------------------------------
    def _lockfile(self) -> int:
        if self._lock_fd is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.dir / APPEND_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        return self._lock_fd

    @contextmanager
    def _flocked(self, fd: int, what: str) -> Iterator[None]:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.0002
            while True:
                time.sleep(delay)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise Busy(
                            f"layer {self.layer!r}: {what} stayed busy in another process; try again"
                        ) from None
                    delay = min(delay * 2, 0.01)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def flush_lock(self) -> Iterator[None]:
        """Hold the layer's flush lock (one flush at a time across processes); Busy on timeout."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / FLUSH_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            with self._flocked(fd, "the write-ahead log's flush"):
                yield
        finally:
            os.close(fd)

    # -- the marker and the active segment (append lock held) ---------------------------
    def _read_marker(self) -> tuple[int, int]:
        raw = os.pread(self._lockfile(), MARKER.size, 0)
        if len(raw) < MARKER.size:
            return 0, 0
        seq, end = MARKER.unpack(raw)
        return int(seq), int(end)

    def _write_marker(self, seq: int, end: int) -> None:
        os.pwrite(self._lockfile(), MARKER.pack(seq, end), 0)

    def segments(self) -> list[int]:
        """Sequence numbers of the segment files present, ascending."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(s for s in (segment_seq(n) for n in names) if s is not None)

    def flush_state(self) -> dict[str, float]:
        """What ``wal.flushed`` says: ``seq`` (the highest segment wholly in the index),
        ``flushes`` and ``seconds`` (totals over every process), ``last_seconds``, ``last_at``."""
        try:
            data = json.loads((self.dir / FLUSHED).read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def flushed_seq(self) -> int:
        """The highest segment known to be wholly in the index (0 if none)."""
        return int(self.flush_state().get("seq", 0))

    def record_count(self) -> int:
        """Records in the segments present, counted from their headers (no checksums)."""
        count = 0
        for seq in self.segments():
            try:
                data = (self.dir / segment_name(seq)).read_bytes()
            except FileNotFoundError:
                continue
            pos = 0
            while len(data) - pos >= HEAD:
                magic, length, _, _ = HEADER.unpack_from(data, pos)
                if magic != MAGIC or pos + HEAD + length > len(data):
                    break
                count += 1
                pos += HEAD + length
        return count

    def _open_active(self) -> tuple[int, int]:
        """Make ``self._fd`` the active segment, repairing a torn tail; (seq, valid end)."""
        seq, end = self._read_marker()
        # While the marker names our open segment it is still the active one: no listing.
        present = self.segments() if self._fd is None or seq != self._seq or seq == 0 else [seq]
        if not present or seq != present[-1] or seq == 0:
            # No marker (first use, or after a reboot lost it): take the newest segment and
            # check it whole.
            seq = present[-1] if present else max(self.flushed_seq() + 1, 1)
            end = -1
        if self._fd is not None and self._seq != seq:
            os.close(self._fd)
            self._fd = None
        if self._fd is None:
            path = self.dir / segment_name(seq)
            created = not path.exists()
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            self._seq = seq
            if created:
                fsync_path(self.dir)
        size = os.fstat(self._fd).st_size
        if end != size:
            end = self._repair(max(end, 0) if 0 <= end <= size else 0, size)
        return seq, end

    def _repair(self, start: int, size: int) -> int:
        """Check records from ``start`` and cut a torn tail; the new end."""
        assert self._fd is not None
        data = (
            os.pread(self._fd, size, 0)
            if start == 0
            else b"\0" * start + os.pread(self._fd, size - start, start)
        )
        where = str(self.dir / segment_name(self._seq))
        _, end = scan(data, start, self.layer, where)
        if end != size:
            log.warning(
                "layer %s: cutting a torn write-ahead log tail at byte %d of %s", self.layer, end, where
            )
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        self._write_marker(self._seq, end)
        return end

    # -- appending ----------------------------------------------------------------------
    def append(self, data: bytes) -> int:
        """Append framed records and fdatasync; returns the segment they are in.

        Raises Unavailable (disk full: the partial write is cut, nothing is acknowledged),
        Busy (the append lock stayed taken), LogCorrupt (damage before the tail).
        """
        with self._mutex, self._flocked(self._lockfile(), "the write-ahead log"):
            seq, end = self._open_active()
            assert self._fd is not None
            try:
                written = os.write(self._fd, data)
                while written < len(data):
                    written += os.write(self._fd, data[written:])
                os.fdatasync(self._fd)
            except OSError as err:
                self._cut(end)
                if is_no_space(err):
                    raise Unavailable(
                        f"layer {self.layer!r}: no space left on device for the write-ahead log in {self.dir}; "
                        "nothing was stored"
                    ) from None
                raise
            self._write_marker(seq, end + len(data))
            self.appended_bytes += len(data)
            return seq

    def _cut(self, end: int) -> None:
        try:
            assert self._fd is not None
            os.ftruncate(self._fd, end)
            self._write_marker(self._seq, end)
        except OSError:  # the next appender re-checks the tail anyway
            log.warning("layer %s: could not cut a failed write-ahead log append", self.layer, exc_info=True)

    def rotate(self) -> int:
        """Seal the active segment (if it holds anything) and start the next; the last sealed seq."""
        with self._mutex, self._flocked(self._lockfile(), "the write-ahead log"):
            seq, end = self._open_active()
            if end == 0:
                return seq - 1
            path = self.dir / segment_name(seq + 1)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            fsync_path(self.dir)
            if self._fd is not None:
                os.close(self._fd)
            self._fd, self._seq = fd, seq + 1
            self._write_marker(seq + 1, 0)
            return seq

    def active_bytes(self) -> int:
        """Bytes of every segment present (cheap: stats only)."""
        total = 0
        for seq in self.segments():
            try:
                total += os.stat(self.dir / segment_name(seq)).st_size
            except FileNotFoundError:
                continue
        return total

    # -- reading and flushing -------------------------------------------------------------
    def read(self, upto: int) -> list[Record]:
        """Every record in segments <= ``upto``, in order. Raises LogCorrupt."""
        records: list[Record] = []
        for seq in self.segments():
            if seq > upto:
                break
            path = self.dir / segment_name(seq)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            for offset, payload in scan(data, 0, self.layer, str(path))[0]:
                records.append(decode(seq, offset, payload, self.layer, str(path)))
        return records

    def check(self) -> int:
        """Validate every segment (LogCorrupt on damage); the number of records."""
        return len(self.read(1 << 62))

    def begin_flush(self, upto: int) -> bool:
        """Record (durably) that a flush up to ``upto`` may commit; True if a previous one died
        after committing, so this flush must apply its records idempotently."""
        marker = self.dir / FLUSHING
        dirty = marker.exists()
        tmp = self.dir / f".wal.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        write_durably(marker, str(upto).encode(), tmp)
        return dirty

    def end_flush(self, upto: int, seconds: float | None = None) -> None:
        """After the commit: record ``upto`` as flushed (and, given ``seconds``, count a flush
        that took that long), remove its segments and the marker. Hold ``flush_lock``."""
        state = self.flush_state()
        state["seq"] = upto
        if seconds is not None:
            state["flushes"] = state.get("flushes", 0) + 1
            state["seconds"] = state.get("seconds", 0.0) + seconds
            state["last_seconds"] = seconds
            state["last_at"] = time.time()
        tmp = self.dir / f".wal.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        write_durably(self.dir / FLUSHED, json.dumps(state).encode(), tmp)
        for seq in self.segments():
            if seq <= upto:
                with suppress(FileNotFoundError):
                    os.unlink(self.dir / segment_name(seq))
        (self.dir / FLUSHING).unlink(missing_ok=True)
        fsync_path(self.dir)

    def discard_locked(self) -> int:
        """Seal and drop every record (a restore replaced the layer); the last dropped seq.
        Hold ``flush_lock``."""
        upto = self.rotate()
        if upto > 0:
            self.end_flush(upto)
        return upto

    def close(self) -> None:
        """Close the open files (locks held by this object are released)."""
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError as err:
                    if err.errno != errno.EBADF:
                        raise
        self._fd = self._lock_fd = None
