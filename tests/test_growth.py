"""Growth analysis: history from the index, daily rates, and the 1 GiB projection."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from jamey_engine import growth
from jamey_engine.errors import InvalidInput

TODAY = date(2026, 3, 10)


def _current(**layers: tuple[int, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"layer": name, "documents": docs, "bytes": size} for name, (docs, size) in layers.items()]
    )


def test_index_history_counts_documents_back_from_now() -> None:
    rows = [
        {"day": date(2026, 3, 8), "layer": "working", "documents": 2},
        {"day": date(2026, 3, 10), "layer": "working", "documents": 3},
    ]
    history = growth.index_history(rows, _current(working=(10, 1000)), days=3, today=TODAY)
    assert list(history["day"].dt.date) == [date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)]
    assert list(history["added"]) == [2, 0, 3]
    assert list(history["documents"]) == [7, 7, 10]
    assert list(history["bytes"]) == [700, 700, 1000]


def test_index_history_keeps_empty_layers_at_zero() -> None:
    history = growth.index_history([], _current(semantic=(0, 0)), days=2, today=TODAY)
    assert list(history["documents"]) == [0, 0]
    assert list(history["bytes"]) == [0, 0]


def test_index_history_rejects_a_non_positive_window() -> None:
    with pytest.raises(InvalidInput, match="days 0"):
        growth.index_history([], _current(working=(1, 1)), days=0, today=TODAY)


def test_with_total_sums_the_layers_per_day() -> None:
    rows = [{"day": TODAY, "layer": "episodic", "documents": 1}]
    history = growth.index_history(rows, _current(working=(4, 400), episodic=(6, 60)), days=2, today=TODAY)
    total = growth.with_total(history)
    last = total[(total["layer"] == "total") & (total["day"].dt.date == TODAY)].iloc[0]
    assert (last["added"], last["documents"], last["bytes"]) == (1, 10, 460)
    assert list(total["layer"].unique()) == ["working", "episodic", "total"]


def test_daily_rates_fit_a_slope_per_layer() -> None:
    days = pd.date_range("2026-03-01", periods=5, freq="D", tz=UTC)
    history = pd.DataFrame(
        {"day": list(days) * 2, "layer": ["a"] * 5 + ["b"] * 5, "bytes": [0, 10, 20, 30, 40] + [5] * 5}
    )
    rates = growth.daily_rates(history, "bytes")
    assert rates["a"] == pytest.approx(10.0)
    assert rates["b"] == pytest.approx(0.0)


def test_daily_rates_are_unknown_with_one_day() -> None:
    history = pd.DataFrame({"day": [pd.Timestamp(TODAY, tz=UTC)], "layer": ["a"], "bytes": [5]})
    assert math.isnan(growth.daily_rates(history, "bytes")["a"])


def test_prometheus_daily_keeps_the_last_sample_of_each_day() -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                ["2026-03-09T01:00Z", "2026-03-09T23:00Z", "2026-03-10T05:00Z"], utc=True
            ),
            "value": [1.0, 2.0, 3.0],
            "layer": ["working"] * 3,
        }
    )
    daily = growth.prometheus_daily(frame)
    assert list(daily["bytes"]) == [2.0, 3.0]
    assert list(daily["day"].dt.date) == [date(2026, 3, 9), date(2026, 3, 10)]


def test_projection_dates_the_crossing_of_one_gib() -> None:
    projection = growth.project_crossing(
        {"working": growth.GIB - 100 * 10, "total": 2 * growth.GIB, "semantic": 5, "episodic": 7},
        {"working": 100.0, "total": 1.0, "semantic": 0.0},
        today=TODAY,
    ).set_index("layer")
    assert projection.loc["working", "status"] == "crosses"
    assert projection.loc["working", "days_left"] == pytest.approx(10.0)
    assert projection.loc["working", "crosses_on"] == date(2026, 3, 20)
    assert projection.loc["total", "status"] == "over"
    assert projection.loc["semantic", "status"] == "not growing"
    assert projection.loc["episodic", "status"] == "unknown"
    assert list(projection.index)[-1] == "total"


def test_projection_beyond_ten_years_says_so() -> None:
    projection = growth.project_crossing({"working": 0}, {"working": 1.0}, today=TODAY)
    assert projection.iloc[0]["status"] == "beyond horizon"
    assert projection.iloc[0]["crosses_on"] is None


def test_describe_projection_speaks_plainly() -> None:
    projection = growth.project_crossing({"working": growth.GIB - 1024}, {"working": 1024.0}, today=TODAY)
    (line,) = growth.describe_projection(projection)
    assert line.startswith("working: 1024.0 MiB, growing 1.0 KiB/day, crosses 1.0 GiB around 2026-03-11")


def test_threshold_matches_the_alert_rule_constant() -> None:
    from jamey_engine.observability import promql

    assert promql.INDEX_SIZE_THRESHOLD == growth.ALERT_THRESHOLD_BYTES


def test_current_frame_reads_sizes() -> None:
    from types import SimpleNamespace

    sizes = SimpleNamespace(layers={"working": SimpleNamespace(layer="working", documents=3, bytes=30)})
    frame = growth.current_frame(sizes)
    assert frame.to_dict("records") == [{"layer": "working", "documents": 3, "bytes": 30}]


def test_index_history_accepts_datetimes_for_today() -> None:
    history = growth.index_history(
        [], _current(working=(1, 1)), days=1, today=datetime(2026, 3, 10, 23, 59, tzinfo=UTC)
    )
    assert list(history["day"].dt.date) == [TODAY]
