from datetime import UTC, datetime, timedelta, timezone

import pytest

from jamey_engine.durations import (
    as_utc,
    days_before,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
    parse_timestamp,
)
from jamey_engine.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_it_parses_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d30", "1x", "0s", "1h 2", "-5m"])
def test_it_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(InvalidInput, match="older_than"):
        parse_duration(text, field="older_than")


def test_format_duration_round_trips() -> None:
    assert format_duration(timedelta(days=1, hours=2)) == "1d2h"
    assert parse_duration(format_duration(timedelta(hours=5, seconds=3))) == timedelta(hours=5, seconds=3)


def test_timestamps_are_utc_and_naive_means_utc() -> None:
    assert parse_timestamp("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_timestamp("2026-01-02T05:04:05+02:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_timestamp("2026-01-02T03:04:05").tzinfo is UTC


def test_a_bad_timestamp_names_the_field() -> None:
    with pytest.raises(InvalidInput, match="timestamp 'yesterday'"):
        parse_timestamp("yesterday")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GiB", 1024**3),
        ("1gib", 1024**3),
        ("500MB", 500_000_000),
        ("1.5 KiB", 1536),
        ("2kb", 2000),
        ("3MiB", 3 * 1024**2),
        ("1GB", 10**9),
        ("1048576", 1048576),
        ("64B", 64),
    ],
)
def test_it_parses_sizes_in_decimal_and_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "1 GiBs", "-1MiB", "0MB", "1.2.3GB", "ten MB", "1 MiB 2"])
def test_it_rejects_what_is_not_a_size(text: str) -> None:
    with pytest.raises(InvalidInput, match="max_bytes"):
        parse_size(text, field="max_bytes")


def test_format_size_round_trips() -> None:
    for value in (1024**3, 3 * 1024**2, 1536, 1000, 7):
        assert parse_size(format_size(value)) == value
    assert format_size(1024**3) == "1GiB"


def test_as_utc_reads_a_naive_moment_as_utc_and_converts_an_aware_one() -> None:
    naive = datetime(2026, 3, 1, 12, 0)
    assert as_utc(naive) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert as_utc(naive).tzinfo is UTC
    east = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    converted = as_utc(east)
    assert converted.tzinfo is UTC and converted.hour == 12
    assert as_utc(None) is None


def test_days_before_counts_back_and_stops_at_the_earliest_date_instead_of_overflowing() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert days_before(now, 10) == datetime(2026, 2, 19, 12, 0, tzinfo=UTC)
    assert days_before(now, 1.5) == datetime(2026, 2, 28, 0, 0, tzinfo=UTC)
    earliest = datetime.min.replace(tzinfo=UTC)
    assert days_before(now, 800_000) == earliest  # before year 1
    assert days_before(now, 10**10) == earliest  # more days than a timedelta holds
