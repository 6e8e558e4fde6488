"""Small real notebooks for the runner tests: one that succeeds, one that fails, slow ones."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def write_notebook(folder: Path, name: str, title: str, parameters: str, *cells: str) -> Path:
    """notebooks/<name>.ipynb: a title cell, a ``parameters`` cell, then ``cells`` (a cell that
    starts with ``## `` is markdown)."""
    notebook = new_notebook(metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    notebook.cells.append(new_markdown_cell(f"# {title}\n\nWhat the {name} notebook is for."))
    notebook.cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    for source in cells:
        if source.startswith("## "):
            notebook.cells.append(new_markdown_cell(source))
        else:
            notebook.cells.append(new_code_cell(source))
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


def make_test_notebooks(folder: Path) -> Path:
    """ok (analysis), fails (raises in cell 3), slow (sleeps), slow_change (a runbook that sleeps),
    and plain (no parameters cell: not a runbook)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_notebook(
        folder,
        "ok",
        "Count things",
        'words = "a b c"  # the words to count\nrepeat = 2  # how many times',
        "## Count",
        "count = len(words.split()) * repeat\nprint('counted', count)",
        "## Summary",
        '{"count": count, "words": words}',
    )
    write_notebook(
        folder,
        "fails",
        "Fail on purpose",
        "limit = 3  # a number",
        "## Break",
        "raise ValueError(f'boom at {limit}')",
        "print('never')",
    )
    write_notebook(
        folder,
        "slow",
        "Wait a while",
        "seconds = 60.0  # how long to sleep",
        "## Sleep",
        "import time\nprint('sleeping', flush=True)\ntime.sleep(seconds)",
        '{"slept": seconds}',
    )
    write_notebook(
        folder,
        "slow_change",
        "Change slowly",
        'seconds = 60.0  # how long to sleep\ndry_run = True  # plan only\nconfirm = ""  # the phrase',
        "## Apply",
        "import time\ntime.sleep(0 if dry_run else seconds)",
        '{"dry_run": dry_run, "confirm_phrase": "change it"}',
    )
    plain = new_notebook(metadata={"kernelspec": KERNELSPEC})
    plain.cells.append(new_code_cell("x = 1"))
    nbformat.write(plain, folder / "plain.ipynb")
    return folder
