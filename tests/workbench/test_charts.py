"""The dashboard figures: a legend entry per series, thresholds always inside the y-range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from workbench_ui import charts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def frame(rows: list[tuple[int, float, dict[str, str]]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"timestamp": T0 + timedelta(minutes=m), "value": v, **labels} for m, v, labels in rows]
    )


def test_each_series_gets_a_legend_entry_and_the_threshold_one_too() -> None:
    data = frame(
        [(0, 0.1, {"quantile": "0.5"}), (1, 0.2, {"quantile": "0.5"}), (0, 0.4, {"quantile": "0.95"})]
    )
    figure = charts.time_series_figure(data, title="Latency", unit="seconds", by=["quantile"], threshold=1.0)
    names = [trace.name for trace in figure.data]
    assert names == ["quantile=0.5", "quantile=0.95", "alert threshold 1.00 s"]
    assert all(trace.showlegend for trace in figure.data)
    assert figure.layout.showlegend is True


def test_a_single_series_still_shows_its_legend() -> None:
    figure = charts.time_series_figure(frame([(0, 1.0, {}), (1, 2.0, {})]), title="x")
    assert len(figure.data) == 1
    assert figure.data[0].showlegend is True
    assert figure.layout.showlegend is True


def test_the_threshold_is_inside_the_y_range_when_data_is_far_below_it() -> None:
    data = frame([(0, 0.001, {}), (1, 0.002, {})])
    figure = charts.time_series_figure(data, title="Errors", unit="ratio", threshold=0.05)
    low, high = figure.layout.yaxis.range
    assert low <= 0.05 < high
    assert low <= 0.001


def test_the_threshold_is_inside_the_y_range_when_data_is_far_above_it() -> None:
    data = frame([(0, 50.0, {}), (1, 80.0, {})])
    figure = charts.time_series_figure(data, title="Latency", unit="seconds", threshold=1.0)
    low, high = figure.layout.yaxis.range
    assert low <= 1.0 < high
    assert high >= 80.0


def test_the_threshold_line_spans_the_data_time_range() -> None:
    data = frame([(0, 1.0, {}), (30, 2.0, {})])
    figure = charts.time_series_figure(data, title="x", threshold=5.0)
    line = figure.data[-1]
    assert list(line.y) == [5.0, 5.0]
    assert pd.Timestamp(line.x[0]) == pd.Timestamp(T0)
    assert pd.Timestamp(line.x[1]) == pd.Timestamp(T0 + timedelta(minutes=30))


def test_series_by_a_label_sums_over_the_other_labels() -> None:
    data = frame(
        [
            (0, 1.0, {"route": "/a", "status": "200"}),
            (0, 2.0, {"route": "/b", "status": "200"}),
            (0, 0.5, {"route": "/a", "status": "500"}),
        ]
    )
    named = charts.series(data, by=["status"])
    assert set(named) == {"status=200", "status=500"}
    assert named["status=200"]["value"].tolist() == [3.0]


def test_series_drop_nan_and_infinite_values() -> None:
    data = frame([(0, float("nan"), {}), (1, float("inf"), {}), (2, 1.0, {})])
    assert charts.series(data)["value"]["value"].tolist() == [1.0]


def test_series_by_a_missing_label_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="layer"):
        charts.series(frame([(0, 1.0, {"scope": "key"})]), by=["layer"])


def test_an_empty_frame_draws_only_the_threshold_within_range() -> None:
    empty = pd.DataFrame(columns=["timestamp", "value"])
    figure = charts.time_series_figure(empty, title="x", threshold=3.0)
    assert [t.name for t in figure.data] == ["alert threshold 3"]
    low, high = figure.layout.yaxis.range
    assert low <= 3.0 < high


def test_y_range_without_data_or_threshold_is_zero_to_one() -> None:
    assert charts.y_range([]) == (0.0, 1.0)


def test_y_range_of_constant_zero_data_is_not_empty() -> None:
    low, high = charts.y_range([0.0, 0.0])
    assert low == 0.0 and high > 0.0


def test_stacked_series_range_covers_the_total() -> None:
    data = frame([(0, 600.0, {"layer": "a"}), (0, 600.0, {"layer": "b"})])
    figure = charts.time_series_figure(data, title="x", unit="bytes", stacked=True)
    assert figure.layout.yaxis.range[1] >= 1200.0


@pytest.mark.parametrize(
    ("value", "threshold", "level"),
    [
        (0.01, 0.05, "ok"),
        (0.045, 0.05, "warning"),
        (0.05, 0.05, "critical"),
        (None, 0.05, "unknown"),
        (float("nan"), 1.0, "unknown"),
        (5.0, None, "ok"),
    ],
)
def test_threshold_level_colors_headline_numbers(
    value: float | None, threshold: float | None, level: str
) -> None:
    assert charts.threshold_level(value, threshold) == level


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.0523, "ratio", "5.23%"),
        (0.35, "seconds", "350 ms"),
        (3.5, "seconds", "3.50 s"),
        (93600, "seconds", "26.0 h"),
        (512, "bytes", "512 B"),
        (1536, "bytes", "1.5 KiB"),
        (1073741824, "bytes", "1.0 GiB"),
        (2.5, "per_second", "2.5/s"),
        (None, "count", "–"),
    ],
)
def test_format_value_renders_units(value: float | None, unit: charts.Unit, text: str) -> None:
    assert charts.format_value(value, unit) == text


def test_csv_has_a_header_and_iso_timestamps() -> None:
    csv = charts.to_csv(frame([(0, 1.5, {"layer": "working"})])).decode()
    assert csv.splitlines() == ["timestamp,value,layer", "2026-01-01T00:00:00Z,1.5,working"]


def test_growth_figure_stacks_one_bar_trace_per_layer() -> None:
    rows = [
        {"day": T0.date(), "layer": "working", "documents": 3},
        {"day": T0.date(), "layer": "semantic", "documents": 1},
        {"day": (T0 + timedelta(days=1)).date(), "layer": "working", "documents": 2},
    ]
    figure = charts.growth_figure(rows)
    assert [t.name for t in figure.data] == ["semantic", "working"]
    assert figure.layout.barmode == "stack"


def test_latest_by_gives_each_series_its_newest_finite_value() -> None:
    data = frame(
        [
            (0, 5.0, {"layer": "working"}),
            (2, 7.0, {"layer": "working"}),
            (3, float("nan"), {"layer": "working"}),
            (1, 9.0, {"layer": "semantic"}),
        ]
    )
    assert charts.latest_by(data, "layer") == {"semantic": 9.0, "working": 7.0}
    assert charts.latest_by(pd.DataFrame(columns=["timestamp", "value"]), "layer") == {}
    with pytest.raises(ValueError, match="scope"):
        charts.latest_by(data, "scope")


def test_a_series_without_labels_takes_the_given_legend_name() -> None:
    figure = charts.time_series_figure(frame([(0, 1.0, {})]), title="x", name="5xx share")
    assert figure.data[0].name == "5xx share"


def test_byte_ticks_use_binary_units_so_one_gib_is_a_round_tick() -> None:
    values, labels = charts.byte_ticks(0, 1.2 * 1024**3)
    assert 1024**3 in values
    assert labels[values.index(1024**3)] == "1 GiB"
    assert len(values) <= 7
    values, labels = charts.byte_ticks(0, 300 * 1024**2)
    assert labels[0] == "0 MiB" and all(label.endswith(" MiB") for label in labels)


def test_a_bytes_figure_labels_its_ticks_in_binary_units() -> None:
    data = frame([(0, 600 * 1024**2, {"layer": "a"})])
    figure = charts.time_series_figure(data, title="x", unit="bytes", threshold=1024**3)
    assert "1 GiB" in figure.layout.yaxis.ticktext


def test_every_severity_of_the_rules_and_every_level_has_a_colour_of_the_one_palette() -> None:
    import yaml

    rules = Path(__file__).resolve().parents[2] / "prometheus" / "rules" / "alerts.yml"
    severities = {
        rule["labels"]["severity"]
        for group in yaml.safe_load(rules.read_text())["groups"]
        for rule in group["rules"]
    }
    assert severities <= set(charts.SEVERITY_COLORS), severities
    assert set(charts.SEVERITY_COLORS.values()) | set(charts.LEVEL_COLORS.values()) <= set(charts.HUES)
    assert charts.severity_color("page-me") == "gray"
