"""The dashboards' time ranges: presets, custom ranges and durations from the URL, validated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jamey_engine.durations import format_duration, parse_duration, parse_timestamp, utcnow
from jamey_engine.errors import InvalidInput

PRESETS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
DEFAULT_PRESET = "1h"
CUSTOM = "custom"
# Preset ranges end at "now" rounded down to this, so repeated renders share cached queries.
RANGE_ALIGNMENT_SECONDS = 10
MAX_RANGE = timedelta(days=90)


@dataclass(frozen=True)
class TimeRange:
    """A dashboard time range: a preset name (or ``custom``) and its aware-UTC bounds."""

    preset: str
    start: datetime
    end: datetime

    def query_params(self) -> dict[str, str]:
        """The URL query parameters that reproduce this range (for shareable links)."""
        if self.preset != CUSTOM:
            return {"range": self.preset}
        return {
            "range": CUSTOM,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": self.end.isoformat().replace("+00:00", "Z"),
        }


def _aligned(moment: datetime) -> datetime:
    seconds = int(moment.timestamp()) // RANGE_ALIGNMENT_SECONDS * RANGE_ALIGNMENT_SECONDS
    return datetime.fromtimestamp(seconds, tz=moment.tzinfo)


def resolve_range(
    preset: str | None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    now: datetime | None = None,
) -> TimeRange:
    """Turn URL parameters into a TimeRange.

    ``preset`` is one of PRESETS, ``custom`` (then ``start`` and ``end`` are ISO 8601
    timestamps), a duration such as ``3h`` (the last 3 hours), or empty for the default.
    Raises InvalidInput naming the parameter and value when the range is unusable.
    """
    moment = _aligned(now or utcnow())
    name = (preset or DEFAULT_PRESET).strip()
    if name in PRESETS:
        return TimeRange(name, moment - PRESETS[name], moment)
    if name == CUSTOM:
        if start is None or start == "" or end is None or end == "":
            raise InvalidInput("A custom range needs both a start and an end time.")
        begin = parse_timestamp(start, field="start")
        finish = parse_timestamp(end, field="end")
        if finish <= begin:
            raise InvalidInput(f"end {finish.isoformat()} must be after start {begin.isoformat()}.")
        if finish - begin > MAX_RANGE:
            raise InvalidInput(
                f"range of {format_duration(finish - begin)} is longer than the longest allowed, "
                f"{format_duration(MAX_RANGE)}."
            )
        return TimeRange(CUSTOM, begin, finish)
    try:
        span = parse_duration(name, field="range")
    except InvalidInput:
        raise InvalidInput(
            f"range {name!r} is not one of {', '.join(PRESETS)} or custom, nor a duration such as 3h."
        ) from None
    if span > MAX_RANGE:
        raise InvalidInput(
            f"range {name!r} is longer than the longest allowed, {format_duration(MAX_RANGE)}."
        )
    return TimeRange(name, moment - span, moment)
