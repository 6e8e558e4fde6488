"""The memory store's public records and the checks every entry point applies to input.

Each check raises InvalidInput (or PayloadTooLarge) naming the field and the bad value,
before anything is written.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from jamey_engine.durations import as_utc, parse_timestamp
from jamey_engine.errors import InvalidInput, PayloadTooLarge
from jamey_engine.memory.layers import ORDERS
from jamey_engine.text import is_blank

MAX_LIMIT = 1000  # most results of one search, at every front door
DEFAULT_LIMIT = 10  # results of a search that names no limit
# tantivy stores dates as i64 nanoseconds since the epoch: up to 2262-04-11.
MIN_YEAR, MAX_YEAR = 1970, 2261


@dataclass(frozen=True)
class Memory:
    """One stored memory. ``score`` is set by a search ordered by score."""

    id: str
    layer: str
    content: str
    timestamp: datetime
    score: float | None = None


@dataclass(frozen=True)
class LayerSize:
    """Disk use of one layer's current generation."""

    layer: str
    bytes: int
    documents: int
    segments: int


@dataclass(frozen=True)
class Sizes:
    """Disk use of every layer, and the totals."""

    layers: dict[str, LayerSize]
    total_bytes: int
    total_documents: int


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or, with ``dry_run``, would remove) from one layer.

    On a dry run ``bytes_after`` is an estimate: the current size scaled by the share of
    documents that would stay. ``documents_before`` is the layer's count the prune saw.
    """

    layer: str
    deleted: int
    bytes_before: int
    bytes_after: int
    dry_run: bool
    documents_before: int


def check_content(content: object, max_bytes: int, *, field: str = "content") -> str:
    """Return ``content`` if it is non-blank text of at most ``max_bytes`` UTF-8 bytes."""
    if not isinstance(content, str):
        raise InvalidInput(f"{field} must be text, not {type(content).__name__}")
    if is_blank(content):
        raise InvalidInput(f"{field} must not be empty")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise InvalidInput(
            f"{field} is not valid Unicode text (a lone surrogate at position {err.start})"
        ) from None
    if size > max_bytes:
        raise PayloadTooLarge(f"{field} is {size} bytes; the limit is {max_bytes} (JAMEY_MAX_CONTENT_BYTES)")
    return content


def check_timestamp(value: object, *, field: str = "timestamp") -> datetime:
    """Parse an ISO 8601 text or datetime (None means now) as aware UTC; InvalidInput otherwise."""
    if value is not None and not isinstance(value, str | datetime):
        raise InvalidInput(f"{field} {value!r} is not an ISO 8601 timestamp, e.g. 2026-01-31T12:00:00Z")
    parsed = parse_timestamp(value, field=field)
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise InvalidInput(
            f"{field} {value!r} is outside the years 1970 to 2261 (the index stores dates up to 2262)"
        )
    return parsed


def search_window(since: object, until: object) -> tuple[datetime | None, datetime | None] | None:
    """A search's time window as aware UTC bounds (None: unbounded), or None when the window
    holds nothing (empty, reversed, or wholly outside the years the index stores). Bounds
    beyond the stored years are dropped rather than refused: no memory lies there. Raises
    InvalidInput for a value that is not a timestamp."""
    bounds: list[datetime | None] = []
    for value, field in ((since, "since"), (until, "until")):
        if value is not None and not isinstance(value, str | datetime):
            raise InvalidInput(f"{field} {value!r} is not an ISO 8601 timestamp, e.g. 2026-01-31T12:00:00Z")
        bounds.append(None if value is None else parse_timestamp(value, field=field))
    start, end = bounds
    if (start is not None and start.year > MAX_YEAR) or (end is not None and end.year < MIN_YEAR):
        return None
    if start is not None and start.year < MIN_YEAR:
        start = None
    if end is not None and end.year > MAX_YEAR:
        end = None
    if start is not None and end is not None and start >= end:
        return None
    return start, end


def check_limit(limit: object) -> int:
    """Return ``limit`` if it is a whole number from 1 to MAX_LIMIT."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit {limit!r} must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def check_order(order: object) -> str:
    """Return ``order`` if it is "score" or "newest"."""
    if order not in ORDERS:
        raise InvalidInput(f"order {order!r} must be one of: {', '.join(ORDERS)}")
    return str(order)


def check_memory_id(memory_id: object) -> str:
    """Return the canonical text of a UUID memory id; InvalidInput if it is not a UUID."""
    try:
        return str(uuid.UUID(str(memory_id)))
    except ValueError:
        raise InvalidInput(f"memory id {memory_id!r} is not a UUID") from None


class _RandomPool:
    """Random bytes from the OS, fetched 4 KiB at a time.

    ``os.urandom`` drops the GIL around its system call; on the event loop of a busy service
    every such drop can cost a wait for the GIL behind other threads, so a store fetches its
    id's 16 bytes from here instead (one call per 256 ids). A forked child starts with an
    empty pool: it never hands out its parent's bytes.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = b""
        self._at = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._at + count > len(self._bytes):
                self._bytes, self._at = os.urandom(max(count, self.SIZE)), 0
            chunk = self._bytes[self._at : self._at + count]
            self._at += count
            return chunk

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._bytes, self._at = b"", 0


_POOL = _RandomPool()
os.register_at_fork(after_in_child=_POOL.forget)


def new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as text, faster than calling uuid4 in a loop."""
    raw = bytearray(_POOL.take(16 * count))
    ids = []
    for start in range(0, 16 * count, 16):
        raw[start + 6] = (raw[start + 6] & 0x0F) | 0x40
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80
        h = raw[start : start + 16].hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def quick_timestamp(value: object) -> datetime | None:
    """The fast path of check_timestamp for bulk input: the parsed UTC time, or None.

    None means "not obviously valid": the caller then runs check_timestamp, which either
    accepts the value (None means now) or raises the proper InvalidInput.
    """
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    elif type(value) is datetime:
        parsed = value
    else:
        return None
    parsed = as_utc(parsed)
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        return None
    return parsed


def quick_content_ok(content: object, max_bytes: int) -> bool:
    """True when ``content`` is surely valid: non-blank ASCII text within the bound (else check fully)."""
    return (
        type(content) is str and content.isascii() and 0 < len(content) <= max_bytes and not content.isspace()
    )
