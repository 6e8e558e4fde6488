"""The Schedules section of the Runbooks page under AppTest: the next five times show before
saving, a bad expression is named, and add, pause, resume and remove change the records."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from jamey_engine.engine import Engine
from jamey_engine.runbooks import schedules

from .conftest import sign_in, texts


def _open(at: AppTest) -> AppTest:
    at.switch_page("pages/runbooks.py").run()
    assert not at.exception, at.exception
    return at


def test_an_operator_previews_adds_pauses_resumes_and_removes_a_schedule(
    engine: Engine, admin_app: AppTest
) -> None:
    shipped = {s.id for s in schedules.list_schedules(engine.db)}
    at = _open(admin_app)
    assert "Schedules" in [h.value for h in at.subheader]
    at.selectbox(key="sc_runbook").select("memory_growth").run()
    at.text_input(key="sc_cron").input("15 7 * * 1").run()
    at.text_input(key="sc_parameters").input('{"days": 14}').run()
    preview = texts(at)
    assert "Next five runs: Mon " in preview and preview.count("07:15 UTC") == 5

    at.text_input(key="sc_cron").input("15 7 * *").run()
    assert "cron '15 7 * *' is not a cron expression" in texts(at)
    assert not any(b.key == "sc_add" for b in at.button)  # nothing to save while it is wrong
    at.text_input(key="sc_cron").input("15 7 * * 1").run()
    at.button(key="sc_add").click().run()
    assert not at.exception, at.exception
    added = [s for s in schedules.list_schedules(engine.db) if s.id not in shipped]
    assert [(s.runbook, s.cron, s.parameters, s.created_by) for s in added] == [
        ("memory_growth", "15 7 * * 1", {"days": 14}, "ops-admin")
    ]
    new_id = added[0].id

    at.selectbox(key="sc_pick").select(new_id).run()
    at.button(key="sc_pause").click().run()
    assert schedules.get_schedule(engine.db, new_id).paused
    at.selectbox(key="sc_pick").select(new_id).run()
    at.button(key="sc_resume").click().run()
    assert not schedules.get_schedule(engine.db, new_id).paused
    at.selectbox(key="sc_pick").select(new_id).run()
    at.button(key="sc_remove").click().run()
    assert not at.exception, at.exception
    assert new_id not in {s.id for s in schedules.list_schedules(engine.db)}


def test_a_viewer_sees_the_schedules_but_no_form(engine: Engine, app: AppTest, wb_env: Path) -> None:
    viewer = engine.keys.create("victor-viewer", scopes=("ops:read",), actor="test").key
    sign_in(app, viewer)
    at = _open(app)
    assert "Schedules" in [h.value for h in at.subheader] and len(at.dataframe) >= 1
    assert not any(b.key in ("sc_add", "sc_pause", "sc_resume", "sc_remove") for b in at.button)
