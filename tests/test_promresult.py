"""Turning Prometheus API answers into Python: refused-query errors and tidy DataFrames."""

from __future__ import annotations

import math

import pandas as pd

from jamey_engine.observability.promresult import parse_client_error, tidy, to_float


def test_parse_client_error_reads_prometheus_json_error_text() -> None:
    message = (
        'HTTP Status Code 400 (b\'{"status":"error","errorType":"bad_data","error":"1:5: parse error"}\')'
    )
    assert parse_client_error(message) == (400, "1:5: parse error")


def test_parse_client_error_keeps_a_body_that_is_not_json() -> None:
    assert parse_client_error("HTTP Status Code 404 (b'404 page not found\\n')") == (
        404,
        "404 page not found",
    )
    assert parse_client_error("something else") == (0, "something else")


def test_to_float_turns_junk_into_nan() -> None:
    assert to_float("1.5") == 1.5
    assert math.isnan(to_float("NaN"))
    assert math.isnan(to_float(None))
    assert math.isnan(to_float("x"))


def test_tidy_turns_a_matrix_into_one_row_per_sample_dropping_non_finite_values() -> None:
    result = [
        {"metric": {"layer": "semantic", "job": "jamey"}, "values": [[10, "2"], [20, "NaN"], [30, "+Inf"]]},
        {"metric": {"layer": "episodic"}, "values": [[10, "1"], [20, "3"]]},
    ]
    frame = tidy(result, ("layer",))
    assert list(frame.columns) == ["timestamp", "value", "layer"]
    assert frame["layer"].tolist() == ["episodic", "episodic", "semantic"]
    assert frame["value"].tolist() == [1.0, 3.0, 2.0]
    assert frame["timestamp"].iloc[0] == pd.Timestamp(10, unit="s", tz="UTC")


def test_tidy_reads_an_instant_vector_and_fills_missing_labels() -> None:
    frame = tidy([{"metric": {}, "value": [5.5, "7"]}], ("scope",))
    assert frame.to_dict("records") == [
        {"timestamp": pd.Timestamp(5.5, unit="s", tz="UTC"), "value": 7.0, "scope": ""}
    ]


def test_tidy_of_nothing_is_an_empty_frame_with_the_columns() -> None:
    frame = tidy([], ("route", "status"))
    assert frame.empty
    assert list(frame.columns) == ["timestamp", "value", "route", "status"]
    assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype)
