"""The Memory page's retention section under AppTest, on real indexes and a real database: the
policy editor shows the plan's figures before saving, apply now removes and records under the
key's name, bad input is an inline error that changes nothing, and the size chart draws each cap."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations
from jamey_engine.plans.store import list_plans

from .conftest import APP, TIMEOUT, figures, open_page, sign_in, texts

REVIEW = "FormSubmitter:retention-Review"


@pytest.fixture
def seeded(engine: Engine, admin_app: AppTest) -> Engine:
    now = utcnow()
    engine.memory.store_batch(
        "working",
        [{"content": f"old note {i}", "timestamp": now - timedelta(days=60 + i)} for i in range(3)]
        + [{"content": f"fresh note {i}", "timestamp": now - timedelta(hours=i + 1)} for i in range(2)],
    )
    engine.close()
    return engine


def test_a_policy_is_reviewed_with_the_plan_then_saved_then_applied(
    seeded: Engine, admin_app: AppTest
) -> None:
    open_page(admin_app, "memory")
    assert not admin_app.exception, admin_app.exception
    assert "No retention run yet." in texts(admin_app)
    admin_app.selectbox(key="retention_layer").set_value("working")
    admin_app.text_input(key="retention_max_age").input("30d")
    admin_app.button(key=REVIEW).click().run()
    assert not admin_app.exception, admin_app.exception
    assert "remove **3 memories**" in texts(admin_app)
    assert seeded.retention.get("working").policy.empty, "a review saves nothing"

    admin_app.button(key="retention_confirm").click().run()
    assert not admin_app.exception, admin_app.exception
    assert "Saved the retention policy of working." in texts(admin_app)
    info = seeded.retention.get("working")
    assert (info.max_age, info.set_by) == (timedelta(days=30), "ops-admin")
    assert seeded.retention.audit()[0]["actor"] == "ops-admin"
    assert seeded.memory.count("working") == 5, "saving removes nothing by itself"

    admin_app.button(key="retention_apply").click().run()  # plans it: the shared plan component
    assert not admin_app.exception, admin_app.exception
    (plan,) = list_plans(seeded.db)
    assert plan.action == "retention" and seeded.memory.count("working") == 5
    admin_app.text_input(key="plan_phrase_memory_retention").input(plan.confirm_phrase)
    admin_app.button(key="FormSubmitter:plan_apply_memory_retention-Apply").click().run()
    assert not admin_app.exception, admin_app.exception
    assert f"Plan {plan.id} applied (retention" in texts(admin_app)
    assert seeded.memory.count("working") == 2
    assert {row["actor"] for row in recent_operations(seeded.db, kind="retention")} == {"ops-admin"}
    assert "Last run" in texts(admin_app) and "by ops-admin succeeded" in texts(admin_app)


def test_the_size_chart_draws_each_layers_cap(seeded: Engine, admin_app: AppTest) -> None:
    seeded.retention.set("working", max_bytes="2MiB", actor="test")
    open_page(admin_app, "memory")
    assert not admin_app.exception, admin_app.exception
    chart = next(f for f in figures(admin_app) if "retention" in f["layout"]["title"]["text"])
    caps = [trace for trace in chart["data"] if trace.get("name") == "max_bytes"]
    assert len(caps) == 1 and caps[0]["y"] == [2 * 1024**2, 2 * 1024**2]


@pytest.mark.parametrize(
    ("age", "size", "message"),
    [
        ("10m", "", "max_age '10m' is under the minimum of 1h"),
        ("", "100KiB", "max_bytes '100KiB' is under the minimum of 1MiB"),
        ("a month", "", "max_age 'a month' is not a duration"),
        ("", "huge", "max_bytes 'huge' is not a size"),
    ],
)
def test_bad_policy_input_is_an_inline_error_and_nothing_changes(
    seeded: Engine, admin_app: AppTest, age: str, size: str, message: str
) -> None:
    open_page(admin_app, "memory")
    admin_app.text_input(key="retention_max_age").input(age)
    admin_app.text_input(key="retention_max_bytes").input(size)
    admin_app.button(key=REVIEW).click().run()
    assert not admin_app.exception, admin_app.exception
    assert any(message in e.value for e in admin_app.error), [e.value for e in admin_app.error]
    assert "the next run would remove" not in texts(admin_app)
    assert all(info.policy.empty for info in seeded.retention.show())


@pytest.mark.parametrize(
    ("scope", "editor", "apply"),
    [("ops:read", False, False), ("ops:write", False, True), ("admin", True, True)],
)
def test_each_role_sees_the_retention_actions_its_scope_allows(
    engine: Engine, wb_env: Path, scope: str, editor: bool, apply: bool
) -> None:
    key = engine.keys.create(f"{scope.replace(':', '-')}-person", scopes=(scope,), actor="test").key
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    sign_in(at, key)
    open_page(at, "memory")
    assert not at.exception, at.exception
    assert any("max_age" in frame.value.columns for frame in at.dataframe), "every role reads the policies"
    assert bool(at.get("text_input") and [w for w in at.text_input if w.key == "retention_max_age"]) is editor
    assert bool([b for b in at.button if b.key == "retention_apply"]) is apply
    if not editor:
        assert "Changing a retention policy needs the admin scope." in texts(at)
