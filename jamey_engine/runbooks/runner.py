"""The process that executes one run: ``python -m jamey_engine.runbooks.runner RUN_ID``.

It takes a ``queued`` run, marks it ``running`` with its own pid, executes the notebook with
papermill (a kernel of its own), writes progress to the run's row as each code cell starts, and
leaves the executed notebook and its HTML in the run's folder (then starts the runs queued
behind the caps that its slot lets in). Then it records the outcome:
``succeeded``; ``failed`` (a cell raised, the summary reports an error, or the run outlived
``JAMEY_RUNBOOK_TIMEOUT``), with the failing cell and its error in one line; or ``cancelled``
(its kernel was killed on request: SIGTERM, or the row's cancel flag, polled every second). The
run is also written to the operation log, and old run folders are pruned.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jamey_engine.durations import format_duration, utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import NotFound
from jamey_engine.observability.logsink import setup_logging
from jamey_engine.runbooks import runs
from jamey_engine.runbooks.catalog import RUNNER_PARAMETERS, Runbook, load_runbook

log = logging.getLogger(__name__)

KERNEL = "python3"
POLL_SECONDS = 1.0
KERNEL_EXIT_SECONDS = 5.0  # how long a finished run waits for its kernel to exit before killing it
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(text: object, limit: int = 500) -> str:
    """``text`` without terminal colours, on one line, at most ``limit`` characters."""
    flat = " ".join(_ANSI.sub("", str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class _Cells:
    """Where each code cell sits: its number among the code cells (from 1) and the heading above it."""

    ordinal: dict[int, int] = field(default_factory=dict)
    heading: dict[int, str] = field(default_factory=dict)
    count: int = 0


def map_cells(cells: list[Any]) -> _Cells:
    """Number the code cells of a notebook and find the markdown heading above each."""
    found = _Cells()
    heading = ""
    for index, cell in enumerate(cells):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source") or "").splitlines():
                if line.startswith("#"):
                    heading = line.lstrip("#").strip()[:200]
                    break
        elif cell.get("cell_type") == "code":
            found.count += 1
            found.ordinal[index] = found.count
            found.heading[index] = heading
    return found


def summary_of(notebook: Any) -> dict[str, Any] | None:
    """The JSON object the notebook's last code cell returned (its ``application/json`` output,
    or a literal dict in its plain-text form); None when it returned none."""
    code = [cell for cell in notebook.cells if cell.get("cell_type") == "code"]
    if not code:
        return None
    for output in code[-1].get("outputs", []):
        if output.get("output_type") != "execute_result":
            continue
        data = output.get("data", {})
        value = data.get("application/json")
        if isinstance(value, dict):
            return dict(value)
        try:
            value = ast.literal_eval(str(data.get("text/plain", "")))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
        return dict(value) if isinstance(value, dict) else None
    return None


def write_html(notebook_path: Path, html_path: Path) -> None:
    """Render the executed notebook to HTML (nbconvert), owner-only."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook_path, as_version=4))
    html_path.write_text(body, encoding="utf-8")
    os.chmod(html_path, 0o600)


class _Stopper:
    """Kills the kernel (every child of this process) once, and remembers why.

    A restore past its point of no return is never killed: the stop waits for it to end
    (``vault.restore_journal``); before that point a kill is safe (the next start rolls back).
    """

    def __init__(self, memory_dir: Path | None = None) -> None:
        self.reason: str | None = None
        self._lock = threading.Lock()
        self.memory_dir = memory_dir

    def stop(self, reason: str) -> None:
        from jamey_engine.vault.restore_journal import past_point_of_no_return

        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
        while self.memory_dir is not None and past_point_of_no_return(self.memory_dir):
            time.sleep(0.1)
        self.kill_children()

    def kill_children(self) -> None:
        """Kill every child of this process (the kernel), now."""
        import psutil

        for child in psutil.Process(os.getpid()).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()


def _kernel_gone(grace: float = KERNEL_EXIT_SECONDS) -> None:
    """Wait up to ``grace`` seconds for this runner's children (the kernel papermill asked to
    shut down) to exit, then kill any left and reap them: the run's slot is freed only once its
    kernel is gone, so the runs' caps bound the kernels alive, not just the rows (seen: a third
    kernel of one key, still exiting, beside the two its caps allow)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        children = psutil.Process(os.getpid()).children(recursive=True)
        _, alive = psutil.wait_procs(children, timeout=grace)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(alive, timeout=grace)


def _parameters_for(runbook: Runbook, run: runs.RunRecord, engine: Engine) -> dict[str, Any]:
    values = {name: value for name, value in run.parameters.items() if name not in RUNNER_PARAMETERS}
    if "data_dir" in runbook.declared:
        values["data_dir"] = str(engine.settings.data_dir)
    if "run_actor" in runbook.declared:  # who plans and applies inside the notebook
        values["run_actor"] = run.actor
    if "run_scope" in runbook.declared:
        values["run_scope"] = runbook.scope_for(run.parameters)
    if "run_schedule" in runbook.declared and run.parameters.get("run_schedule") is not None:
        values["run_schedule"] = run.parameters["run_schedule"]  # recorded by the engine's scheduler only
    return values


def _runbook(engine: Engine, name: str) -> Runbook:
    """The one notebook this run needs (not the whole catalog). Raises NotFound when it was
    removed, or is no runbook any more, since the run was queued."""
    path = engine.settings.notebooks_dir / f"{name}.ipynb"
    # A removed file is "no longer exists", not a read error quoting the path twice.
    found = load_runbook(path) if path.is_file() else None
    if found is None:
        raise NotFound(f"runbook {name!r} no longer exists in {engine.settings.notebooks_dir}")
    return found


def _preload_html_exporter() -> None:
    """Import nbconvert while the kernel works: the HTML is then rendered without waiting for it."""
    try:
        from nbconvert import HTMLExporter

        HTMLExporter()
    except Exception:
        log.debug("preloading nbconvert failed", exc_info=True)


def execute(engine: Engine, run_id: str) -> runs.RunRecord:
    """Execute the queued run ``run_id`` to the end and record its outcome; returns the final
    record. A run that is not queued is returned untouched. Never raises for a failing notebook:
    that is the run's outcome."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    db, settings = engine.db, engine.settings
    run = runs.get_run(db, run_id, reap_first=False)
    if run.status != "queued":
        return run
    started = time.monotonic()
    folder = runs.make_run_dir(settings, run_id)
    out = folder / runs.NOTEBOOK_FILE
    stopper = _Stopper(settings.memory_dir)
    error: str | None = None
    error_cell: int | None = None
    summary: dict[str, Any] | None = None
    runbook: Runbook | None = None
    cells = _Cells()
    finished = threading.Event()

    def watch() -> None:
        limit = settings.runbook_timeout.total_seconds()
        while not finished.wait(POLL_SECONDS):
            if time.monotonic() - started > limit:
                stopper.stop(f"timed out after {format_duration(settings.runbook_timeout)}")
            elif runs.cancel_requested(db, run_id):
                stopper.stop("cancelled")

    signal.signal(signal.SIGTERM, lambda *_: stopper.stop("cancelled"))
    watcher = threading.Thread(target=watch, name="runbook-watch", daemon=True)
    watcher.start()
    threading.Thread(target=_preload_html_exporter, name="runbook-preload", daemon=True).start()
    runs.update_run(db, run_id, status="running", started_at=utcnow(), pid=os.getpid())
    try:
        runbook = _runbook(engine, run.runbook)
        notebook = load_notebook_node(str(runbook.path))  # gives every cell its tags
        notebook = parameterize_notebook(notebook, _parameters_for(runbook, run, engine), kernel_name=KERNEL)
        cells = map_cells(notebook.cells)
        staged = folder / "input.ipynb"
        nbformat.write(notebook, staged)

        def on_start(cell: Any, cell_index: int) -> None:
            if stopper.reason is not None:
                # Stopped before its kernel existed (a cancel while queued or starting): the
                # kernel that started since is killed before this cell runs.
                stopper.kill_children()
                return
            if cell_index not in cells.ordinal:  # markdown: nothing runs
                return
            runs.update_run(
                db,
                run_id,
                cell_index=cells.ordinal.get(cell_index),
                cell_count=cells.count,
                cell_heading=cells.heading.get(cell_index) or None,
            )

        def on_error(cell: Any, cell_index: int, execute_reply: Any) -> None:
            nonlocal error_cell
            error_cell = cells.ordinal.get(cell_index)

        try:
            papermill.execute_notebook(
                str(staged),
                str(out),
                kernel_name=KERNEL,
                cwd=str(runbook.path.parent),
                progress_bar=False,
                log_output=False,
                on_cell_start=on_start,
                on_cell_error=on_error,
            )
        finally:
            staged.unlink(missing_ok=True)
    except PapermillExecutionError as err:
        error = one_line(f"{err.ename}: {err.evalue}")
    except Exception as err:
        error = one_line(getattr(err, "message", None) or f"{type(err).__name__}: {err}")
    finally:
        finished.set()
    if out.exists():
        os.chmod(out, 0o600)
        try:
            summary = summary_of(nbformat.read(out, as_version=4))
            write_html(out, folder / runs.HTML_FILE)
        except Exception as err:
            log.warning("run %s: rendering the executed notebook failed", run_id, exc_info=True)
            error = error or one_line(f"rendering the executed notebook failed: {err}")
    if stopper.reason is not None:  # a restore killed before its point of no return: roll it back now
        try:
            from jamey_engine.vault.restore_journal import recover

            recover(engine.memory, db, settings.data_dir)
        except Exception:
            log.warning("run %s: finishing an interrupted restore failed", run_id, exc_info=True)
    if stopper.reason == "cancelled":
        status, error = "cancelled", "cancelled: the kernel was stopped"
    elif stopper.reason is not None:
        status, error = "failed", stopper.reason
    elif error is not None:
        status = "failed"
    elif summary and summary.get("error"):
        status, error = "failed", one_line(summary["error"])
    else:
        status = "succeeded"
    if status != "failed":
        error_cell = None
    _kernel_gone()
    # The operation log first: whoever sees the run finished also finds it there.
    _record(engine, run, status, time.monotonic() - started, error)
    runs.finish_if_active(db, run_id, status, error=error, error_cell=error_cell, summary=summary)
    try:
        runs.apply_retention(db, settings)
    except Exception:
        log.warning("runbook retention failed", exc_info=True)
    return runs.get_run(db, run_id, reap_first=False)


def _record(engine: Engine, run: runs.RunRecord, status: str, seconds: float, error: str | None) -> None:
    from jamey_engine import oplog

    detail = f"{run.runbook} run {run.id}: {status}" + (f" ({error})" if error else "")
    event: dict[str, Any] = {"runbook": run.runbook, "run": run.id, "status": status, "actor": run.actor}
    if run.actor == "schedule":  # which schedule started it, for whoever listens for failures
        from jamey_engine.runbooks.schedules import schedule_of_run

        try:
            event["schedule"] = schedule_of_run(engine.db, run.id)
        except Exception:
            log.warning("run %s: its schedule could not be read", run.id, exc_info=True)
    oplog.record(
        engine.db,
        engine.events,
        "runbook",
        oplog.RUN_OPERATION_STATUS.get(status, "failure"),
        seconds,
        detail=detail,
        actor=run.actor,
        event=event,
    )


def _start_next(engine: Engine) -> None:
    """This run freed its slot: start the runs waiting for one (JAMEY_RUNS_MAX_ACTIVE)."""
    from jamey_engine.runbooks.launch import start_waiting

    try:
        start_waiting(engine)
    except Exception:
        log.warning("starting the queued runbook runs failed", exc_info=True)


def main(argv: list[str] | None = None) -> int:
    """Run the id in ``argv``; exit 0 when it succeeded, 1 otherwise (2 on a bad command line)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m jamey_engine.runbooks.runner RUN_ID", file=sys.stderr)
        return 2
    setup_logging(logging.WARNING)
    # nbformat imports jsonschema, which imports rfc3987_syntax when present to check IRI formats;
    # that package compiles a grammar at import (0.5 s idle, 3.5 s on a loaded 2-core machine),
    # and no notebook schema uses IRIs. Marking it absent lets jsonschema skip that format.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    engine = Engine()
    try:
        record = execute(engine, args[0])
    except Exception as err:
        log.exception("runbook run %s failed in the runner", args[0])
        runs.finish_if_active(engine.db, args[0], "failed", error=one_line(f"the runner failed: {err}"))
        return 1
    finally:
        _start_next(engine)
        engine.close()
    return 0 if record.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
