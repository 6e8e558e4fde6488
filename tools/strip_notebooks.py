"""Strip outputs and execution counts from notebooks, so git holds only their source.

Usage:
    .venv/bin/python tools/strip_notebooks.py            # strip every notebooks/*.ipynb in place
    .venv/bin/python tools/strip_notebooks.py --check    # exit 1 and name each notebook that is not stripped
    .venv/bin/python tools/strip_notebooks.py a.ipynb    # only these files

tests/notebooks/test_notebooks_are_stripped.py runs the same check in the suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# Metadata that execution (Jupyter, papermill) writes and that only makes diffs noisy.
VOLATILE_NOTEBOOK_METADATA = ("papermill", "widgets")
VOLATILE_CELL_METADATA = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")


def problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What is not stripped in ``notebook``: cells with outputs or execution counts, volatile metadata."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index} has an execution_count")
        found.extend(
            f"cell {index} has metadata {key!r}" for key in VOLATILE_CELL_METADATA if key in cell.metadata
        )
    found.extend(
        f"notebook has metadata {key!r}" for key in VOLATILE_NOTEBOOK_METADATA if key in notebook.metadata
    )
    return found


def strip(notebook: nbformat.NotebookNode) -> bool:
    """Remove outputs, execution counts and volatile metadata in place; True when something changed."""
    changed = bool(problems(notebook))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            for key in VOLATILE_CELL_METADATA:
                cell.metadata.pop(key, None)
    for key in VOLATILE_NOTEBOOK_METADATA:
        notebook.metadata.pop(key, None)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Strip (or with --check, only report) the given notebooks, default every notebooks/*.ipynb."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a notebook is not stripped"
    )
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = 0
    for path in paths:
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        if args.check:
            found = problems(notebook)
            if found:
                dirty += 1
                print(f"{path}: not stripped ({'; '.join(found)})")
        elif strip(notebook):
            nbformat.write(notebook, path)
            print(f"stripped {path}")
    if args.check and dirty:
        print(f"{dirty} notebook(s) not stripped; run: .venv/bin/python tools/strip_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
