"""The memory page: sizes, growth and search over real tantivy indexes, and pruning through a
plan (the shared plan component) that changes nothing until its phrase is typed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.oplog import operation_summary, recent_operations
from jamey_engine.plans.store import list_plans

from .conftest import open_page, texts

DRY = "FormSubmitter:prune-Plan the prune"
APPLY = "FormSubmitter:plan_apply_memory_prune-Apply"


@pytest.fixture
def seeded(engine: Engine, admin_app: AppTest) -> Engine:
    """3 old and 2 recent memories in working, 1 old in semantic; the test's store then lets go
    of its writers so the app's engine can write."""
    now = utcnow()
    engine.memory.store_batch(
        "working",
        [{"content": f"old deploy note {i}", "timestamp": now - timedelta(days=60 + i)} for i in range(3)]
        + [
            {"content": f"fresh deploy note {i}", "timestamp": now - timedelta(hours=i + 1)} for i in range(2)
        ],
    )
    engine.memory.store("semantic", "an old fact about rollbacks", timestamp=now - timedelta(days=90))
    engine.close()
    return engine


def test_sizes_and_growth_show_per_layer(seeded: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "memory")
    assert not admin_app.exception, admin_app.exception
    assert admin_app.metric[0].value == "6"
    sizes = admin_app.dataframe[0].value.set_index("layer")
    assert sizes.loc["working", "documents"] == 5
    assert sizes.loc["semantic", "documents"] == 1
    assert sizes.loc["working", "bytes"] > 0
    assert admin_app.get("plotly_chart"), "the growth chart is drawn"


def test_search_finds_memories(seeded: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "memory")
    admin_app.selectbox(key="search_layer").set_value("working")
    admin_app.text_input(key="search_query").input("fresh")
    admin_app.button(key="FormSubmitter:search-Search").click().run()
    assert not admin_app.exception, admin_app.exception
    hits = admin_app.dataframe[-1].value
    assert sorted(hits["content"]) == ["fresh deploy note 0", "fresh deploy note 1"]


def test_an_empty_search_is_an_inline_error(seeded: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "memory")
    admin_app.button(key="FormSubmitter:search-Search").click().run()
    assert [e.value for e in admin_app.error] == ["Query must not be empty."]


def test_a_malformed_query_is_an_inline_error_and_the_page_goes_on(
    seeded: Engine, admin_app: AppTest
) -> None:
    open_page(admin_app, "memory")
    admin_app.text_input(key="search_query").input('"unclosed AND (')
    admin_app.button(key="FormSubmitter:search-Search").click().run()
    assert not admin_app.exception, admin_app.exception
    assert len(admin_app.error) == 1
    assert admin_app.text_input(key="prune_older"), "the prune form still renders"


def test_prune_is_planned_changing_nothing_then_applied_with_its_phrase(
    seeded: Engine, admin_app: AppTest
) -> None:
    open_page(admin_app, "memory")
    admin_app.text_input(key="prune_older").input("30d")
    admin_app.button(key=DRY).click().run()
    assert not admin_app.exception, admin_app.exception
    (plan,) = list_plans(seeded.db)
    assert (plan.action, plan.status, plan.planned_by) == ("prune", "planned", "ops-admin")
    assert f"**Plan {plan.id}**" in texts(admin_app)
    layers = next(frame.value for frame in admin_app.dataframe if "to_delete" in frame.value.columns)
    layers = layers.set_index("layer")
    assert layers.loc["working", "to_delete"] == 3 and layers.loc["semantic", "to_delete"] == 1
    assert seeded.memory.sizes().total_documents == 6, "planning deletes nothing"

    admin_app.text_input(key="plan_phrase_memory_prune").input("not the phrase")
    admin_app.button(key=APPLY).click().run()
    assert any("does not match" in error.value for error in admin_app.error), [
        e.value for e in admin_app.error
    ]
    assert seeded.memory.sizes().total_documents == 6, "a wrong phrase changes nothing"

    admin_app.text_input(key="plan_phrase_memory_prune").input(plan.confirm_phrase)
    admin_app.button(key=APPLY).click().run()
    assert not admin_app.exception, admin_app.exception
    assert f"Plan {plan.id} applied (prune" in texts(admin_app)
    assert "backup taken first" in texts(admin_app)  # as from the CLI and the runbook
    sizes = seeded.memory.sizes()
    assert sizes.total_documents == 2
    assert {m.content for m in seeded.memory.search("working", "deploy", limit=10)} == {
        "fresh deploy note 0",
        "fresh deploy note 1",
    }
    # Recorded like a CLI or runbook prune, so the service's /metrics counts it.
    summary = operation_summary(seeded.db)
    assert summary.counts[("prune", "success")] == 5, "one row per layer of the form (all five)"
    assert {layer: n for layer, n in summary.pruned_documents.items() if n} == {"working": 3, "semantic": 1}
    assert {op["actor"] for op in recent_operations(seeded.db, kind="prune")} == {"ops-admin"}
    assert [op["kind"] for op in recent_operations(seeded.db, kind="backup")] == ["backup"]


@pytest.mark.parametrize(
    ("older", "layers", "message"),
    [("a while", None, "older than 'a while' is not a duration"), ("30d", [], "Pick at least one layer")],
)
def test_bad_prune_input_is_an_inline_error_and_nothing_changes(
    seeded: Engine, admin_app: AppTest, older: str, layers: list[str] | None, message: str
) -> None:
    open_page(admin_app, "memory")
    admin_app.text_input(key="prune_older").input(older)
    if layers is not None:
        admin_app.multiselect(key="prune_layers").set_value(layers)
    admin_app.button(key=DRY).click().run()
    assert not admin_app.exception
    assert any(message in e.value for e in admin_app.error), [e.value for e in admin_app.error]
    assert list_plans(seeded.db) == []
    assert seeded.memory.sizes().total_documents == 6
