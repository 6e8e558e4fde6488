"""``jamey runbook schedule``: add, list, pause, resume and remove runbook schedules.

The service runs them (one worker, behind a lease); these commands only change the records.
"""

from __future__ import annotations

from typing import Any

import click

from jamey_engine.cli.common import emit_json, get_engine
from jamey_engine.runbooks import schedules

LIST_FIELDS = (
    "id",
    "runbook",
    "cron",
    "timezone",
    "parameters",
    "next_run_at",
    "last_run_id",
    "last_status",
    "paused",
)


@click.group("schedule")
def group() -> None:
    """Runbook schedules: a runbook run by `jamey serve` on a cron expression (actor schedule)."""


def _line(schedule: schedules.Schedule) -> str:
    state = "paused" if schedule.paused else f"next {schedule.next_run_at:%Y-%m-%d %H:%M}Z"
    last = f"last {schedule.last_run_id} {schedule.last_status}" if schedule.last_run_id else "never run"
    return (
        f"{schedule.id:>4}  {schedule.runbook:<18} {schedule.cron!r:<16} {schedule.timezone:<16} "
        f"{state:<24} {last}  {schedule.parameters}"
    )


@group.command("add")
@click.argument("name")
@click.option("--cron", required=True, metavar="EXPR", help="Five fields: minute hour day month weekday.")
@click.option("--timezone", default="UTC", show_default=True, metavar="TZ", help="IANA time zone of EXPR.")
@click.option(
    "-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE", help="A parameter."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add(name: str, cron: str, timezone: str, parameters: tuple[tuple[str, str], ...], as_json: bool) -> None:
    """Schedule runbook NAME; prints the schedule and its next five run times."""
    engine = get_engine()
    given: dict[str, Any] = dict(parameters)
    schedule = schedules.add_schedule(
        engine, name, cron, timezone=timezone, parameters=given, created_by="cli"
    )
    upcoming = schedules.next_run_times(schedule.cron, schedule.timezone, schedule.created_at)
    if as_json:
        emit_json({**schedule.to_dict(), "next_run_times": [at.isoformat() for at in upcoming]})
        return
    click.echo(f"schedule {schedule.id}: {schedule.runbook} on {schedule.cron!r} ({schedule.timezone})")
    for at in upcoming:
        click.echo(f"  next: {at.isoformat()}")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_schedules(as_json: bool) -> None:
    """Every schedule: id, runbook, cron, time zone, parameters, next run, last run and status."""
    found = schedules.list_schedules(get_engine().db)
    if as_json:
        emit_json([{key: schedule.to_dict()[key] for key in LIST_FIELDS} for schedule in found])
        return
    for schedule in found:
        click.echo(_line(schedule))


@group.command("pause")
@click.argument("schedule_id", metavar="ID", type=int)
def pause(schedule_id: int) -> None:
    """Stop schedule ID from starting runs."""
    click.echo(_line(schedules.pause_schedule(get_engine().db, schedule_id)))


@group.command("resume")
@click.argument("schedule_id", metavar="ID", type=int)
def resume(schedule_id: int) -> None:
    """Start schedule ID again from its next slot (missed slots do not run)."""
    click.echo(_line(schedules.resume_schedule(get_engine().db, schedule_id)))


@group.command("remove")
@click.argument("schedule_id", metavar="ID", type=int)
def remove(schedule_id: int) -> None:
    """Delete schedule ID (its runs stay in the history)."""
    removed = schedules.remove_schedule(get_engine().db, schedule_id)
    click.echo(f"schedule {removed.id} ({removed.runbook}) removed")
