"""A busy index or a locked database shows a clear message inline; nothing changes and the rest
of the page still works."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.plans.store import list_plans

from .conftest import open_page


@pytest.fixture
def short_locks(monkeypatch: pytest.MonkeyPatch, wb_env: Path) -> None:
    monkeypatch.setenv("JAMEY_LOCK_TIMEOUT", "0.5")


@pytest.mark.usefixtures("short_locks")
def test_a_busy_index_stops_the_prune_with_a_message(engine: Engine, admin_app: AppTest) -> None:
    engine.memory.store_batch("working", [{"content": "old", "timestamp": utcnow() - timedelta(days=90)}])
    open_page(admin_app, "memory")
    admin_app.button(key="FormSubmitter:prune-Plan the prune").click().run()
    (plan,) = list_plans(engine.db)
    admin_app.text_input(key="plan_phrase_memory_prune").input(plan.confirm_phrase)
    with engine.memory.generations.exclusive("a restore held by the test", timeout=5):
        admin_app.button(key="FormSubmitter:plan_apply_memory_prune-Apply").click().run()
    assert not admin_app.exception, admin_app.exception
    errors = [e.value for e in admin_app.error]
    assert len(errors) == 1 and "being switched to a new generation by another process" in errors[0], errors
    assert admin_app.dataframe, "sizes still render"
    assert engine.memory.layer_size("working").documents == 1


@pytest.mark.slow
def test_a_locked_database_refuses_the_create_and_the_table_still_shows(
    admin_app: AppTest, engine: Engine, wb_env: Path
) -> None:
    open_page(admin_app, "keys")
    holder = sqlite3.connect(wb_env / "jamey.db", timeout=1, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        admin_app.text_input(key="create_name").input("while-locked")
        admin_app.button(key="FormSubmitter:create_key-Create key").click().run(timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not admin_app.exception, admin_app.exception
    errors = [e.value for e in admin_app.error]
    assert len(errors) == 1 and "stayed busy" in errors[0], errors
    assert list(admin_app.dataframe[0].value["name"]) == ["ops-admin"]
    assert "while-locked" not in [k.name for k in engine.keys.list()]
