"""Projections with and without a retention policy (pure functions of jamey_engine.growth)."""

from __future__ import annotations

from datetime import date

import pytest

from jamey_engine.errors import InvalidInput
from jamey_engine.growth import GIB, describe_policy_projection, project_with_policies

MIB = 1024**2
TODAY = date(2026, 12, 1)


def test_a_size_cap_keeps_the_layer_under_its_cap_and_the_alert() -> None:
    frame = project_with_policies(
        {"working": 800 * MIB, "semantic": 100 * MIB},
        {"working": 50 * MIB, "semantic": 1 * MIB},
        {"working": (None, float(GIB))},
        days=60,
        today=TODAY,
    )
    working = frame[frame["layer"] == "working"]
    assert working["without"].max() == pytest.approx(800 * MIB + 60 * 50 * MIB)
    without, with_policy = list(working["without"]), list(working["with"])
    first_cut = next(day for day, size in enumerate(without) if size > GIB)
    assert with_policy[:first_cut] == without[:first_cut], "under the cap: the policy removes nothing"
    assert with_policy[first_cut] == pytest.approx(0.9 * GIB), "the day it passes the cap: cut to 90%"
    assert min(with_policy[first_cut:]) == pytest.approx(0.9 * GIB)
    assert max(with_policy) <= GIB
    semantic = frame[frame["layer"] == "semantic"]
    assert list(semantic["with"]) == list(semantic["without"]), "no policy: the same line"
    lines = describe_policy_projection(frame)
    assert any(line.startswith("working:") and "never crosses the 1.0 GiB alert" in line for line in lines)


def test_an_age_limit_holds_a_layer_near_its_rate_times_its_age() -> None:
    frame = project_with_policies(
        {"episodic": 10 * MIB}, {"episodic": 10 * MIB}, {"episodic": (30.0, None)}, days=90, today=TODAY
    )
    assert frame["with"].max() == pytest.approx(300 * MIB)
    assert frame["without"].max() == pytest.approx(910 * MIB)


def test_days_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="days 0"):
        project_with_policies({}, {}, {}, days=0)
