"""Starting, following and cancelling runbook runs: what the CLI, the API and the workbench call.

``start_run`` validates the parameters against the catalog (before any kernel starts: a bad one
is a one-line InvalidInput and no run is recorded), records a ``queued`` run and starts its
runner as a separate process, then returns at once. ``wait_for_run`` follows a run's row;
``cancel_run`` asks the runner to stop its kernel.

Beyond the caps (``runs.RunCaps``: ``JAMEY_RUNS_MAX_ACTIVE``, ``JAMEY_RUNS_MAX_PER_ACTOR``) a run
stays ``queued`` with no runner; ``start_waiting`` starts those that fit once slots free. It is
called by every runner that finishes, by the service's runbook scheduler on each pass, and by
whoever waits for a queued run, so a queued run starts whichever process frees its slot.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from jamey_engine.config import without_secrets
from jamey_engine.errors import Unavailable
from jamey_engine.fsutil import process_alive
from jamey_engine.keys.scopes import require_scope
from jamey_engine.runbooks import runs
from jamey_engine.runbooks.catalog import (
    RUNNER_PARAMETERS,
    Runbook,
    find_runbook,
    load_catalog,
    validate_parameters,
)

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

OnProgress = Callable[[runs.RunRecord], None]


def catalog(engine: Engine) -> dict[str, Runbook]:
    """The runbooks of ``JAMEY_NOTEBOOKS_DIR`` by name."""
    return load_catalog(engine.settings.notebooks_dir)


def describe_catalog(engine: Engine) -> list[dict[str, Any]]:
    """Every runbook as JSON-friendly data (``Runbook.to_dict``) with ``answers``: the alert
    names it serves as their diagnosis or remediation (the CLI's and the API's list)."""
    from jamey_engine.runbooks.links import answers

    found = catalog(engine)
    return [{**item.to_dict(), "answers": answers(item.name, found)} for item in found.values()]


def runbook(engine: Engine, name: str) -> Runbook:
    """One runbook by name. Raises NotFound naming the runbooks there are."""
    return find_runbook(engine.settings.notebooks_dir, name)


def known_values(engine: Engine, parameter: str) -> list[str] | None:
    """The values a parameter can take when they are known (a select in a form): the layers for
    ``layer``, the backups (newest first, empty meaning the latest) for ``backup_id``."""
    if parameter == "layer":
        from jamey_engine.memory import LAYERS

        return ["all", *LAYERS]
    if parameter == "backup_id":
        return ["", *(backup.id for backup in engine.vault.list())]
    return None


def start_run(
    engine: Engine,
    name: str,
    parameters: Mapping[str, Any],
    *,
    actor: str,
    scopes: Iterable[str] | None = None,
    runner_parameters: Mapping[str, Any] | None = None,
) -> runs.RunRecord:
    """Validate, record and start a run of runbook ``name`` with ``parameters`` on behalf of
    ``actor``; returns the ``queued`` record at once (the run goes on in its own process, or,
    beyond the caps, waits queued: ``record.waiting``, started when a slot frees).

    Raises NotFound for an unknown runbook, InvalidInput for an unknown parameter or a value of
    the wrong type (nothing recorded, no kernel started), Conflict naming the running one when
    this run would change data while another data-changing run is active, and Unavailable when
    the runner process cannot be started (the run is then marked failed), RateLimited (429, with
    ``retry_after``) when it would wait and ``JAMEY_RUNS_MAX_QUEUED`` runs already wait. Given the caller's key
    ``scopes`` (the API, the workbench), raises Forbidden unless they grant the run's scope
    (``Runbook.scope_for``); the CLI, run by the data dir's owner, passes none.
    ``runner_parameters`` are the engine's own (``catalog.RUNNER_PARAMETERS``, such as the
    schedule that starts the run), recorded with the run and never taken from a caller.
    """
    chosen = runbook(engine, name)
    values = validate_parameters(chosen, parameters)
    if scopes is not None:
        require_scope(actor, tuple(scopes), chosen.scope_for(values))
    for name, value in (runner_parameters or {}).items():
        if name in RUNNER_PARAMETERS and name in chosen.declared:
            values[name] = value
    record = runs.create_run(
        engine.db,
        runbook=chosen.name,
        parameters=values,
        actor=actor,
        changes_data=chosen.changes_data(values),
        caps=runs.RunCaps.from_settings(engine.settings),
    )
    if record.waiting:
        return record
    return _spawn_runner(engine, record.id)


def start_waiting(engine: Engine) -> list[str]:
    """Start the runners of the oldest waiting runs that now fit under the caps; their ids.

    Never raises for one runner that cannot start (that run is marked failed)."""
    started = []
    for run_id in runs.claim_waiting(engine.db, runs.RunCaps.from_settings(engine.settings)):
        try:
            _spawn_runner(engine, run_id)
        except Unavailable:
            continue
        started.append(run_id)
    return started


def _spawn_runner(engine: Engine, run_id: str) -> runs.RunRecord:
    """Start the runner process of the claimed run ``run_id``; its record. Raises Unavailable
    (the run marked failed) when the process cannot start."""
    folder = runs.make_run_dir(engine.settings, run_id)
    # The run reads the data dir and the database; it never verifies a key, so no pepper.
    environ = without_secrets({**os.environ, **engine.settings.to_environ()})
    log_path = folder / "runner.log"
    try:
        with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "jamey_engine.runbooks.runner", run_id],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=environ,
                start_new_session=True,  # a Ctrl-C in the caller's terminal is not a cancel
            )
    except OSError as err:
        runs.finish_if_active(engine.db, run_id, "failed", error=f"the runner could not start: {err}")
        raise Unavailable(f"the runbook runner could not start: {err}") from None
    # The runner marks itself running with its own pid; until then the row names it too, so a
    # runner that dies before its first write is still found dead.
    runs.update_run(engine.db, run_id, pid=process.pid)
    # Collect the child's exit status so it never lingers as a zombie that looks alive.
    threading.Thread(target=process.wait, name=f"runbook-{run_id}", daemon=True).start()
    return runs.get_run(engine.db, run_id, reap_first=False)


def wait_for_run(
    engine: Engine,
    run_id: str,
    *,
    on_progress: OnProgress | None = None,
    timeout: float | None = None,
    poll: float = 0.2,
) -> runs.RunRecord:
    """Follow ``run_id`` until it finishes (or ``timeout`` seconds pass: then the current record),
    calling ``on_progress`` whenever its status or cell changes. A runner that died is found
    (``interrupted``) on the next poll; a run waiting behind the caps is started here as soon
    as a slot frees (should no other process do it first)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: tuple[Any, ...] = ()
    while True:
        record = runs.get_run(engine.db, run_id)
        if record.waiting and start_waiting(engine):
            record = runs.get_run(engine.db, run_id)
        now = (record.status, record.cell_index, record.cell_heading)
        if on_progress is not None and now != seen:
            on_progress(record)
        seen = now
        if not record.active or (deadline is not None and time.monotonic() >= deadline):
            return record
        time.sleep(poll)


def cancel_run(
    engine: Engine, run_id: str, *, actor: str = "cli", scopes: Iterable[str] | None = None
) -> runs.RunRecord:
    """Ask run ``run_id`` to stop: its kernel is killed and it ends ``cancelled`` (a runner on
    another host sees the request within a second). Returns the record as it is now.

    Given the caller's key ``scopes`` (the API, the workbench), raises Forbidden unless they grant
    the scope the run itself needed (``admin`` for a restore that applies): a key that could not
    start a run cannot stop it halfway. Raises NotFound for an unknown run, Conflict when it
    already finished.
    """
    if scopes is not None:
        existing = runs.get_run(engine.db, run_id)
        require_scope(actor, tuple(scopes), runbook(engine, existing.runbook).scope_for(existing.parameters))
    run = runs.request_cancel(engine.db, run_id)
    # The identity, not the pid alone: a pid reused by an unrelated process is never signalled.
    alive = process_alive(run.pid, run.pid_identity)
    if run.host == socket.gethostname() and run.status == "running" and alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(run.pid or 0), signal.SIGTERM)
    elif run.status == "queued" and not alive:
        runs.finish_if_active(engine.db, run_id, "cancelled", error="cancelled before it started")
    return runs.get_run(engine.db, run_id)
