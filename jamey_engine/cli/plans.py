"""``jamey plans``: list, show, create, approve, reject and apply plans (the one contract for
every change), and the helper the data-changing commands use to go through it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from jamey_engine.cli.common import emit_json, get_engine, progress_bar
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput
from jamey_engine.plans import recovery
from jamey_engine.plans.actors import Actor
from jamey_engine.plans.applying import ApplyResult, apply
from jamey_engine.plans.approvals import approve, reject
from jamey_engine.plans.names import STATUSES
from jamey_engine.plans.planning import plan
from jamey_engine.plans.store import PlanRecord
from jamey_engine.preflight.checks import normalize_phrase

# Exit code of a command that planned a change which now waits for a second person's approval.
EXIT_PENDING_APPROVAL = 3


def _value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return "" if value is None else str(value)


def echo_plan(record: PlanRecord) -> None:
    """The plan as people read it: what, who, status, each summary row, and the phrase."""
    click.echo(f"plan {record.id}: {record.action} {_value(record.parameters)}")
    click.echo(
        f"  status {record.status}, planned by {record.planned_by}, expires {record.expires_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    if record.requires_approval:
        approval = record.as_dict()["approval"]
        by = f" by {approval['by']} ({approval['comment']})" if approval["by"] else ""
        click.echo(f"  approval {approval['status']}{by}")
    for name, value in record.summary.items():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            click.echo(f"  {name}:")
            for item in value:
                click.echo("    " + "  ".join(f"{k}={_value(v)}" for k, v in item.items()))
        else:
            click.echo(f"  {name}: {_value(value)}")
    click.echo(f"  confirm phrase: {record.confirm_phrase}")
    if record.error:
        click.echo(f"  error: {record.error}")


def echo_result(result: ApplyResult) -> None:
    """The outcome of an apply as people read it."""
    body = result.as_dict()
    click.echo(f"plan {body['plan_id']} {body['status']} ({body['action']}, {body['duration_seconds']}s)")
    if body["backup_id"]:
        click.echo(f"  backup taken first: {body['backup_id']}")
    for check in body["verification"]:
        click.echo(f"  {'ok ' if check['ok'] else 'FAIL'} {check['name']}: {check['detail']}")


def pending_line(record: PlanRecord) -> str:
    """The one line a command prints when its plan waits for approval."""
    return (
        f"plan {record.id} needs approval by a second key; nothing changed. Approve it with: "
        f"jamey plans approve {record.id} --comment TEXT --key-file PATH"
    )


def through_plan(
    ctx: click.Context,
    action: str,
    parameters: dict[str, Any],
    *,
    confirm: str | None,
    yes: bool,
    quiet: bool = False,
) -> ApplyResult:
    """Plan ``action`` as the CLI, show the plan (unless ``quiet``), and apply it once its phrase
    is typed (or given with ``confirm``; ``yes`` means "apply the plan just shown").

    Exits 3 with one line naming the plan and the approve command when approval is required,
    and 1 when the question is declined; a wrong phrase is InvalidInput (exit 2).
    """
    engine = get_engine()
    record = plan(engine, action, parameters, Actor.cli())
    if not quiet:
        echo_plan(record)
    if record.status == "pending_approval":
        click.echo(pending_line(record), err=True)
        ctx.exit(EXIT_PENDING_APPROVAL)
    phrase = record.confirm_phrase if yes else confirm
    if phrase is None:
        try:
            phrase = click.prompt(
                f"Type {record.confirm_phrase!r} to apply", default="", show_default=False, err=True
            )
        except click.Abort:
            phrase = ""
        if normalize_phrase(phrase) != normalize_phrase(record.confirm_phrase):
            click.echo(
                f"{action} cancelled; nothing changed (type the phrase, or pass --confirm PHRASE or --yes)",
                err=True,
            )
            ctx.exit(1)
    with progress_bar(action) as progress:
        return apply(engine, record.id, phrase, Actor.cli(), progress)


def _key_actor(engine: Engine, key_file: str | None) -> Actor:
    if key_file is None:
        return Actor.cli()  # refused by the contract, with the reason
    try:
        token = Path(key_file).read_text().strip()
    except OSError as err:
        raise InvalidInput(f"--key-file {key_file!r} cannot be read: {err.strerror}") from None
    return Actor.from_key(engine.keys.verify(token))


@click.group("plans")
def group() -> None:
    """Plans: every data-changing action planned, approved (when required) and applied."""


@group.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only plans in this status.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(status: str | None, as_json: bool) -> None:
    """The newest plans, newest first."""
    records = recovery.list_plans(get_engine(), status=status)
    if as_json:
        emit_json([record.as_dict() for record in records])
        return
    for record in records:
        click.echo(
            f"{record.id}  {record.action:<13} {record.status:<16} {record.planned_by:<20} {record.confirm_phrase}"
        )
    if not records:
        click.echo("no plans", err=True)


@group.command("show")
@click.argument("plan_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(plan_id: str, as_json: bool) -> None:
    """One plan in full."""
    record = recovery.get(get_engine(), plan_id)
    if as_json:
        emit_json(record.as_dict())
    else:
        echo_plan(record)


@group.command("create")
@click.argument("action")
@click.option(
    "-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE", help="A parameter."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_command(action: str, parameters: tuple[tuple[str, str], ...], as_json: bool) -> None:
    """Plan ACTION (prune, dedupe, retention, restore, backup-delete, key-revoke, key-rotate); change nothing."""
    record = plan(get_engine(), action, dict(parameters), Actor.cli())
    if as_json:
        emit_json(record.as_dict())
        return
    echo_plan(record)
    if record.status == "pending_approval":
        click.echo(pending_line(record), err=True)
    else:
        click.echo(f"apply it with: jamey plans apply {record.id} --confirm {record.confirm_phrase!r}")


@group.command("approve")
@click.argument("plan_id", metavar="ID")
@click.option("--comment", required=True, help="Why it is approved.")
@click.option(
    "--key-file", type=click.Path(dir_okay=False), help="A file holding the approver's own API key."
)
def approve_command(plan_id: str, comment: str, key_file: str | None) -> None:
    """Approve a plan as a second person (with --key-file: the CLI itself cannot approve)."""
    engine = get_engine()
    record = approve(engine, plan_id, _key_actor(engine, key_file), comment)
    click.echo(f"plan {record.id} approved by {record.decided_by}")


@group.command("reject")
@click.argument("plan_id", metavar="ID")
@click.option("--comment", required=True, help="Why it is rejected.")
@click.option(
    "--key-file", type=click.Path(dir_okay=False), help="A file holding the rejecter's own API key."
)
def reject_command(plan_id: str, comment: str, key_file: str | None) -> None:
    """Reject a plan as a second person (with --key-file)."""
    engine = get_engine()
    record = reject(engine, plan_id, _key_actor(engine, key_file), comment)
    click.echo(f"plan {record.id} rejected by {record.decided_by}")


@group.command("apply")
@click.argument("plan_id", metavar="ID")
@click.option("--confirm", required=True, metavar="PHRASE", help="The plan's confirm phrase.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def apply_command(plan_id: str, confirm: str, as_json: bool) -> None:
    """Apply a plan: phrase, approval, digest, backup first, change, verify, record."""
    with progress_bar("apply") as progress:
        result = apply(get_engine(), plan_id, confirm, Actor.cli(), progress)
    if as_json:
        emit_json(result.as_dict())
    else:
        echo_result(result)
