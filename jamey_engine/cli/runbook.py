"""``jamey runbook``: list, show, run and cancel notebook runbooks, and read the run history."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from jamey_engine.cli.common import emit_json, get_engine, progress_bar
from jamey_engine.cli.runbook_schedule import group as schedule_group
from jamey_engine.errors import JameyError
from jamey_engine.runbooks import launch, runs


@click.group("runbook")
def group() -> None:
    """Runbooks: the notebooks in notebooks/, run in their own process and kept as a record."""


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_runbooks(as_json: bool) -> None:
    """Every runbook: name, kind, title and parameters (and, as JSON, the alerts it answers)."""
    engine = get_engine()
    if as_json:
        emit_json(launch.describe_catalog(engine))
        return
    catalog = launch.catalog(engine)
    for runbook in catalog.values():
        names = ", ".join(f"{p.name}={p.default!r}" for p in runbook.parameters)
        click.echo(f"{runbook.name:<20} {runbook.kind:<9} {runbook.title}  [{names}]")


@group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_runbook(name: str, as_json: bool) -> None:
    """One runbook: its description and parameters (name, type, default, help)."""
    runbook = launch.runbook(get_engine(), name)
    if as_json:
        emit_json(runbook.to_dict())
        return
    click.echo(f"{runbook.name} ({runbook.kind}): {runbook.title}")
    if runbook.description:
        click.echo(runbook.description)
    for p in runbook.parameters:
        click.echo(f"  {p.name:<16} {p.type:<6} default {p.default!r:<12} {p.help}")


def _run_line(run: runs.RunRecord) -> str:
    took = f"{run.duration_seconds:.1f}s" if run.duration_seconds is not None else "-"
    return f"{run.id}  {run.runbook:<18} {run.status:<11} {run.actor:<12} {took:>8}  {run.parameters}"


@group.command("run")
@click.argument("name")
@click.option(
    "-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE", help="A parameter."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def run_runbook(name: str, parameters: tuple[tuple[str, str], ...], as_json: bool) -> None:
    """Run a runbook and wait for it, with a progress bar. Exits non-zero unless it succeeded,
    printing the failing cell's error in one line."""
    engine = get_engine()
    given: dict[str, Any] = dict(parameters)
    record = launch.start_run(engine, name, given, actor="cli")
    with progress_bar(f"{name} {record.id}") as update:

        def show(run: runs.RunRecord) -> None:
            if run.cell_index is not None and run.cell_count:
                update(run.cell_index, run.cell_count, run.progress_text)

        try:
            record = launch.wait_for_run(engine, record.id, on_progress=show)
        except KeyboardInterrupt:
            launch.cancel_run(engine, record.id)
            raise
    if as_json:
        emit_json(record.to_dict(engine.settings))
    else:
        data = record.to_dict(engine.settings)
        click.echo(f"run {record.id}: {record.status}")
        if record.summary is not None:
            for key, value in record.summary.items():
                click.echo(f"  {key}: {value}")
        click.echo(f"notebook: {data['notebook']}")
        click.echo(f"html: {data['html']}")
    if record.status != "succeeded":
        where = f"cell {record.error_cell}: " if record.error_cell else ""
        raise JameyError(f"run {record.id} {record.status}: {where}{record.error or 'no error recorded'}")


@group.command("runs")
@click.option("--runbook", "runbook_name", metavar="NAME", help="Only runs of this runbook.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_runs(runbook_name: str | None, limit: int, as_json: bool) -> None:
    """The run history, newest first."""
    engine = get_engine()
    found = runs.list_runs(engine.db, runbook=runbook_name, limit=limit)
    if as_json:
        keys = ("id", "runbook", "status", "actor", "parameters", "started_at", "finished_at")
        emit_json([{key: run.to_dict()[key] for key in (*keys, "duration_seconds")} for run in found])
        return
    for run in found:
        click.echo(_run_line(run))


@group.command("cancel")
@click.argument("run_id")
def cancel(run_id: str) -> None:
    """Stop a run: its kernel is killed and the run ends cancelled."""
    engine = get_engine()
    record = launch.cancel_run(engine, run_id)
    with contextlib.suppress(JameyError):
        record = launch.wait_for_run(engine, run_id, timeout=30)
    click.echo(f"run {record.id}: {record.status}")


group.add_command(schedule_group)
