"""Memory content needs memory:read on every door; counts, sizes and charts need only ops:read.

Reproduced: an ops:read key searched every memory on the workbench's Memory page (up to 500
hits) and downloaded explore's executed notebook, which quotes memories' text, from the
workbench and from `GET /admin/runbooks/runs/{id}/notebook`, while the API's search needs
memory:read.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import nbformat
import pytest
from streamlit.testing.v1 import AppTest
from workbench.conftest import APP, TIMEOUT, open_page, texts

from jamey_engine.engine import Engine
from jamey_engine.runbooks import runs
from workbench_ui.session import WorkbenchSession

SECRET = "the vault combination is 31-41-59"


def _signed_in(engine: Engine, *scopes: str) -> AppTest:
    key = engine.keys.create("-".join(s.replace(":", "") for s in scopes), scopes=scopes, actor="test").key
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["workbench_session"] = WorkbenchSession.sign_in(engine.keys, key, timedelta(minutes=30))
    at.run()
    assert not at.exception, at.exception
    return at


def _finished_run(engine: Engine, runbook: str) -> runs.RunRecord:
    """A finished run of ``runbook`` whose executed notebook prints a memory's text."""
    record = runs.create_run(engine.db, runbook=runbook, parameters={}, actor="test", changes_data=False)
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explorer.top_repeated()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{SECRET} (3 copies)\n")]
    notebook.cells.append(cell)
    nbformat.write(notebook, runs.make_run_dir(engine.settings, record.id) / runs.NOTEBOOK_FILE)
    assert runs.finish_if_active(engine.db, record.id, "succeeded")
    return record


def _page_text(at: AppTest) -> str:
    frames = " ".join(frame.value.to_string() for frame in at.dataframe)
    return f"{texts(at)} {frames}"


@pytest.fixture
def secret_memory(engine: Engine, wb_env: Path) -> Engine:
    engine.memory.store("episodic", SECRET)
    engine.memory.flush()
    return engine


def test_an_ops_read_key_cannot_search_memory_content_in_the_workbench(secret_memory: Engine) -> None:
    at = open_page(_signed_in(secret_memory, "ops:read"), "memory")
    assert not at.exception, at.exception
    assert "Documents" in [metric.label for metric in at.metric]  # counts and sizes stay
    assert not [w for w in at.text_input if w.key == "search_query"]
    assert "needs the memory:read scope" in texts(at)
    assert SECRET not in _page_text(at)


def test_a_key_with_memory_read_searches_in_the_workbench(secret_memory: Engine) -> None:
    at = open_page(_signed_in(secret_memory, "ops:read", "memory:read"), "memory")
    at.selectbox(key="search_layer").set_value("episodic")
    at.text_input(key="search_query").input("vault")
    at.button(key="FormSubmitter:search-Search").click().run()
    assert not at.exception, at.exception
    assert SECRET in _page_text(at)


def test_the_workbench_run_view_hides_explore_files_from_an_ops_read_key(secret_memory: Engine) -> None:
    record = _finished_run(secret_memory, "explore_memories")
    at = _signed_in(secret_memory, "ops:read")
    at.query_params["run"] = record.id
    at = at.switch_page("pages/runbooks.py").run()
    assert not at.exception, at.exception
    assert f"Run {record.id}: explore_memories" in texts(at)
    assert "needs the memory:read scope" in texts(at)
    assert not at.get("download_button")
    assert SECRET not in _page_text(at)

    reader = _signed_in(secret_memory, "ops:read", "memory:read")
    reader.query_params["run"] = record.id
    reader = reader.switch_page("pages/runbooks.py").run()
    assert not reader.exception, reader.exception
    assert reader.get("download_button")
    assert SECRET in _page_text(reader)


def test_the_api_refuses_explore_files_to_an_ops_read_key(secret_memory: Engine, serve) -> None:  # type: ignore[no-untyped-def]
    explore = _finished_run(secret_memory, "explore_memories")
    growth = _finished_run(secret_memory, "memory_growth")
    viewer = secret_memory.keys.create("viewer", scopes=("ops:read",), actor="test").key
    reader = secret_memory.keys.create("reader", scopes=("ops:read", "memory:read"), actor="test").key
    server = serve(data_dir=secret_memory.settings.data_dir)

    def get(path: str, key: str) -> httpx.Response:
        return httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)

    refused = get(f"/admin/runbooks/runs/{explore.id}/notebook", viewer)
    assert refused.status_code == 403, refused.text
    assert "memory:read" in refused.json()["error"] and SECRET not in refused.text
    assert get(f"/admin/runbooks/runs/{explore.id}/html", viewer).status_code == 403
    # The record (status, summary: counts) stays an ops:read read, and so do other runbooks' files.
    assert get(f"/admin/runbooks/runs/{explore.id}", viewer).status_code == 200
    assert get(f"/admin/runbooks/runs/{growth.id}/notebook", viewer).status_code == 200
    allowed = get(f"/admin/runbooks/runs/{explore.id}/notebook", reader)
    assert allowed.status_code == 200 and SECRET in allowed.text
