"""Parsing of human durations (``30d``, ``1h``, ``90s``), sizes (``1GiB``, ``500MB``) and UTC timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import overload

from jamey_engine.errors import InvalidInput

# The years of a timestamp that is stored, 1970 to 2261: what nanosecond times hold (the memory
# index, pandas' frames of alert history). A regular expression for the four digits of the year.
STORED_YEARS_PATTERN = r"(19[7-9][0-9]|2[01][0-9][0-9]|22[0-5][0-9]|226[01])"
# An RFC 3339 date-time (``2026-01-31T12:00:00Z``, ``...00.123456789+01:00``) in those years,
# unanchored: the JSON Schema ``date-time`` format narrowed to them and to seconds 00 to 59.
# ``[0-9]``, not ``\d``, which in Python also matches other scripts' digits.
STORED_DATE_TIME_PATTERN = (
    STORED_YEARS_PATTERN
    + r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    + r"(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str, *, field: str = "duration") -> timedelta:
    """Parse ``30d``, ``1h30m``, ``90s`` or ``2w`` into a positive timedelta.

    Raises InvalidInput naming ``field`` and the value when it is not a duration.
    """
    raw = str(text).strip().lower()
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not raw or pos != len(raw):
        raise InvalidInput(
            f"{field} {text!r} is not a duration; use a number and a unit (s, m, h, d, w), e.g. 30d or 1h30m"
        )
    if seconds <= 0:
        raise InvalidInput(f"{field} {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a timedelta compactly, largest units first (``1d2h``)."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_size(text: str, *, field: str = "size") -> int:
    """Parse ``1GiB``, ``500MB``, ``1.5 GiB`` or ``1048576`` (bytes) into a whole number of bytes above zero.

    Units: B, KB/MB/GB/TB (powers of 1000) and KiB/MiB/GiB/TiB (powers of 1024), any case.
    Raises InvalidInput naming ``field`` and the value when it is not a size or not above zero.
    """
    raw = str(text).strip()
    match = _SIZE.fullmatch(raw.lower())
    if not match or match.group(2) not in {"", *_SIZE_UNITS}:
        raise InvalidInput(
            f"{field} {text!r} is not a size; use a number and a unit "
            "(B, KB, MB, GB, KiB, MiB, GiB), e.g. 1GiB or 500MB"
        )
    value = round(float(match.group(1)) * _SIZE_UNITS.get(match.group(2) or "b", 1))
    if value <= 0:
        raise InvalidInput(f"{field} {text!r} must be above zero")
    return value


def format_size(value: int) -> str:
    """Render bytes compactly and exactly when a binary unit fits (``1GiB``, ``1536MiB``), else in bytes."""
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}B"


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
@overload
def as_utc(moment: datetime | None) -> datetime | None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """``moment`` as an aware UTC datetime (None stays None). A naive moment is taken as UTC, as
    everywhere in Jamey: the database, the stored memories and every API keep UTC, and a time
    without a zone was written by one of them. The one place that rule is written."""
    if moment is None:
        return None
    zone = moment.tzinfo
    if zone is None:
        return moment.replace(tzinfo=UTC)
    return moment if zone is UTC else moment.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC. The one clock the engine reads."""
    return datetime.now(UTC)


def days_before(moment: datetime, days: float) -> datetime:
    """``days`` days before ``moment``, or the earliest time a datetime holds when that is
    further back (a "keep 100,000,000 days" rule keeps everything instead of overflowing)."""
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=moment.tzinfo)


def format_moment(moment: datetime) -> str:
    """A moment as people read it on every page: ``2026-12-06 14:03:07 UTC`` (a naive moment is
    taken as UTC, as everywhere in Jamey)."""
    return f"{as_utc(moment):%Y-%m-%d %H:%M:%S} UTC"


def parse_timestamp(value: str | datetime | None, *, field: str = "timestamp") -> datetime:
    """Parse an ISO 8601 timestamp (or pass a datetime through) as an aware UTC datetime.

    ``None`` means now. A naive value is taken as UTC. Raises InvalidInput on anything else.
    """
    if value is None:
        return utcnow()
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"{field} {value!r} is not an ISO 8601 timestamp, e.g. 2026-01-31T12:00:00Z"
            ) from None
    return as_utc(parsed)
