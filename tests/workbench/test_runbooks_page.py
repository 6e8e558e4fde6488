"""The Runbooks page under AppTest: a deep link fills the form, a dry run shows the plan, Apply
needs the phrase typed by hand, and the run history and run view show what ran."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import wait_until
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, seed_memories
from streamlit.testing.v1 import AppTest

from jamey_engine.engine import Engine
from jamey_engine.plans import store as plan_store
from jamey_engine.runbooks import runs

from .conftest import sign_in, texts

DEADLINE = 180.0
DRY = "FormSubmitter:rb_form_prune_memories-Dry run"


def _until(at: AppTest, done: Callable[[AppTest], bool], what: str) -> AppTest:

    def rerun() -> bool:
        at.run()
        assert not at.exception, at.exception
        return done(at)

    try:
        wait_until(rerun, DEADLINE, what, every=0.3)
    except AssertionError as failed:
        raise AssertionError(f"{failed}: {texts(at)}") from None
    return at


@pytest.fixture
def seeded(engine: Engine, wb_env: Path) -> Engine:
    seed_memories(engine)
    engine.close()  # let go of the writers: the runbook's kernel prunes
    return engine


def _open(at: AppTest, **query: str) -> AppTest:
    for name, value in query.items():
        at.query_params[name] = value
    return at.switch_page("pages/runbooks.py").run()


def test_a_deep_link_fills_the_form_and_the_dry_run_then_apply_prunes(
    seeded: Engine, admin_app: AppTest
) -> None:
    at = _open(admin_app, runbook="prune_memories", layer="episodic")
    assert not at.exception, at.exception
    assert at.selectbox(key="rb_choice").value == "prune_memories"
    assert at.selectbox(key="rb_prune_memories_layer").value == "episodic"
    assert at.checkbox(key="rb_prune_memories_backup_first").value is True
    at.button(key=DRY).click().run()
    assert not at.exception, at.exception
    _until(at, lambda a: any(b.key == "rb_apply" for b in a.button), "the plan")
    assert f"prune {OLD_PER_LAYER} memories" in texts(at)

    at.text_input(key="rb_confirm_text").input("prune everything")
    at.button(key="rb_apply").click().run()
    assert "does not match the plan's confirm phrase" in texts(at)
    assert engine_documents(seeded, "episodic") == OLD_PER_LAYER + NEW_PER_LAYER

    planned = runs.list_runs(seeded.db, runbook="prune_memories")[0]
    assert planned.summary is not None
    at.text_input(key="rb_confirm_text").input(planned.summary["confirm_phrase"])
    at.button(key="rb_apply").click().run()

    def applied(a: AppTest) -> bool:
        latest = runs.list_runs(seeded.db, runbook="prune_memories")[0]
        return latest.id != planned.id and not latest.active

    _until(at, applied, "the apply")
    at.run()
    latest = runs.list_runs(seeded.db, runbook="prune_memories")[0]
    assert latest.status == "succeeded" and latest.actor == "ops-admin"
    assert latest.parameters["dry_run"] is False and latest.parameters["layer"] == "episodic"
    # The apply applied exactly the dry run's plan, not a new one.
    assert latest.parameters["plan_id"] == planned.summary["plan_id"]
    assert plan_store.get(seeded.db, planned.summary["plan_id"]).status == "applied"
    assert engine_documents(seeded, "episodic") == NEW_PER_LAYER
    history = at.dataframe[0].value
    assert list(history["status"][:2]) == ["succeeded", "succeeded"]
    assert list(history["actor"][:2]) == ["ops-admin", "ops-admin"]
    assert at.selectbox(key="rb_open").value == latest.id
    assert f"Pruned {OLD_PER_LAYER} memories" in texts(at)  # the executed notebook's output
    assert len(at.get("download_button")) == 2  # the notebook and its HTML


def engine_documents(engine: Engine, layer: str) -> int:
    fresh = Engine(engine.settings)
    try:
        return fresh.memory.sizes().layers[layer].documents
    finally:
        fresh.close()


def test_a_link_to_an_unknown_runbook_says_so(admin_app: AppTest) -> None:
    at = _open(admin_app, runbook="nope")
    assert not at.exception, at.exception
    assert "The link names runbook 'nope', which does not exist" in texts(at)


def test_the_growth_analysis_run_view_draws_its_charts(seeded: Engine, admin_app: AppTest) -> None:
    from jamey_engine.runbooks import launch

    started = launch.start_run(seeded, "memory_growth", {"days": 60}, actor="ops-admin")
    done = launch.wait_for_run(seeded, started.id, timeout=DEADLINE)
    assert done.status == "succeeded", done.error
    at = _open(admin_app, run=done.id)
    assert not at.exception, at.exception
    assert at.selectbox(key="rb_open").value == done.id
    assert len(at.get("plotly_chart")) >= 2  # documents and bytes per layer, from the index
    assert "Memory growth" in texts(at)


def test_a_viewer_sees_the_catalog_but_cannot_run(engine: Engine, wb_env: Path, app: AppTest) -> None:
    key = engine.keys.create("victor", scopes=("ops:read",), actor="test").key
    sign_in(app, key)
    at = _open(app)
    assert not at.exception, at.exception
    choice = at.selectbox(key="rb_choice")
    assert any("prune_memories" in option for option in choice.options)
    choice.set_value(next(option for option in choice.options if "dedupe_memories" in option)).run()
    at.button(key="FormSubmitter:rb_form_dedupe_memories-Dry run").click().run()
    assert "lacks the scope 'ops:write'" in texts(at)
    assert runs.list_runs(engine.db) == []


@pytest.fixture
def test_notebooks(wb_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small test notebooks as the app's catalog (set before the app first runs)."""
    from notebook_factory import make_test_notebooks

    folder = make_test_notebooks(tmp_path / "notebooks")
    monkeypatch.setenv("JAMEY_NOTEBOOKS_DIR", str(folder))
    return folder


def test_cancel_on_the_run_view_stops_a_running_run(
    engine: Engine, wb_env: Path, test_notebooks: Path, admin_app: AppTest
) -> None:
    """Started from the form, followed cell by cell, then Cancel: the run ends ``cancelled``,
    its kernel gone, and the page says so."""
    import psutil

    at = _open(admin_app)
    assert not at.exception, at.exception
    at.selectbox(key="rb_choice").select("slow").run()
    at.number_input(key="rb_slow_seconds").set_value(300.0)
    at.button(key="FormSubmitter:rb_form_slow-Run").click().run()
    assert not at.exception, at.exception
    [started] = runs.list_runs(engine.db)
    assert started.runbook == "slow" and started.actor == "ops-admin"

    def sleeping(a: AppTest) -> bool:
        run = runs.get_run(engine.db, started.id)
        assert run.active, run
        return (
            run.status == "running"
            and (run.cell_index or 0) >= 3
            and any(b.key == "rb_cancel" for b in a.button)
        )

    _until(at, sleeping, "the sleeping cell with a Cancel button")
    running = runs.get_run(engine.db, started.id)
    assert running.pid is not None
    kernels = psutil.Process(running.pid).children(recursive=True)
    assert kernels
    at.button(key="rb_cancel").click().run()
    assert not at.exception, at.exception
    assert f"Cancelling {started.id}" in texts(at)

    _until(at, lambda a: not runs.get_run(engine.db, started.id).active, "the cancelled run to finish")
    done = runs.get_run(engine.db, started.id)
    assert done.status == "cancelled" and done.error == "cancelled: the kernel was stopped", done
    _gone, alive = psutil.wait_procs(kernels, timeout=30)
    assert not alive, "the kernel was stopped"
    at.run()
    assert not any(b.key == "rb_cancel" for b in at.button), "a finished run has no Cancel button"
    assert at.dataframe[0].value["status"][0] == "cancelled"
