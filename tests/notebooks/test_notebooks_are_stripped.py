"""Notebooks live in git as source only: no outputs, no execution counts, no run metadata."""

from __future__ import annotations

import runpy
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
strip_tool = runpy.run_path(str(ROOT / "tools" / "strip_notebooks.py"))


def test_the_three_runbook_notebooks_exist() -> None:
    assert {path.name for path in NOTEBOOKS} >= {
        "memory_growth.ipynb",
        "prune_memories.ipynb",
        "restore_backup.ipynb",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_stripped(path: Path) -> None:
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert strip_tool["problems"](notebook) == [], (
        f"{path.name} is not stripped; run .venv/bin/python tools/strip_notebooks.py"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_has_one_parameters_cell(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "data_dir = None" in tagged[0].source


def test_strip_removes_outputs_and_counts() -> None:
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "1 + 1",
                execution_count=3,
                outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)],
                metadata={"execution": {"iopub.status.busy": "x"}},
            )
        ],
        metadata={"papermill": {"parameters": {}}},
    )
    assert strip_tool["problems"](notebook)
    assert strip_tool["strip"](notebook) is True
    assert strip_tool["problems"](notebook) == []
    assert notebook.cells[0].source == "1 + 1"
    assert strip_tool["strip"](notebook) is False


def test_check_mode_fails_on_an_executed_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "executed.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", execution_count=1)])
    nbformat.write(notebook, path)
    assert strip_tool["main"](["--check", str(path)]) == 1
    assert "not stripped" in capsys.readouterr().out
    assert strip_tool["main"]([str(path)]) == 0
    assert strip_tool["main"](["--check", str(path)]) == 0


def test_the_notebooks_the_alert_mapping_names_exist() -> None:
    from jamey_engine.runbooks.links import ALERT_LINKS, runbook_for_alert

    named = {link.diagnosis for link in ALERT_LINKS.values()}
    named |= {found.runbook for name in ALERT_LINKS if (found := runbook_for_alert(name)) is not None}
    assert {"diagnose_alert", "prune_memories"} <= named
    for name in named:
        assert (ROOT / "notebooks" / f"{name}.ipynb").is_file(), (
            f"links.py names runbook {name}, which does not exist"
        )


def test_the_kernel_runs_the_projects_python(tmp_path: Path) -> None:
    import sys

    import papermill

    source = tmp_path / "probe.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.prefix)")]), source
    )
    out = tmp_path / "probe-out.ipynb"
    papermill.execute_notebook(str(source), str(out), kernel_name="python3", progress_bar=False)
    printed = nbformat.read(out, as_version=4).cells[0].outputs[0].text.strip()
    assert printed == sys.prefix, "the python3 kernel must be the project's .venv: make venv installs it"
