"""``jamey memory retention``: show, set and clear each layer's retention policy; plan and apply them."""

from __future__ import annotations

from typing import Any

import click

from jamey_engine.cli.common import emit_json, get_engine
from jamey_engine.memory import LAYERS
from jamey_engine.retention import PolicyInfo, RetentionRun
from jamey_engine.sizes import bytes_freed

_LAYER_HELP = f"Memory layer: {', '.join(LAYERS)}."
ACTOR = "cli"


def _policy_line(info: PolicyInfo) -> str:
    data = info.as_dict()
    age = data["max_age"] or "-"
    size = data["max_bytes_text"] or "-"
    who = f"   set by {info.set_by} at {info.set_at.isoformat()}" if info.set_by and info.set_at else ""
    return f"{info.layer:<11} {age:>10} {size:>12}{who}"


def _policy_json(info: PolicyInfo) -> dict[str, Any]:
    data = info.as_dict()
    return {
        "max_age": data["max_age"],
        "max_bytes": data["max_bytes"],
        "set_by": data["set_by"],
        "set_at": data["set_at"],
    }


@click.group("retention")
def group() -> None:
    """Retention policies per layer: max age and max bytes (see docs/retention.md)."""


@group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON keyed by layer (null when unset).")
def show_command(as_json: bool) -> None:
    """Each layer's max_age and max_bytes, and who set them when."""
    policies = get_engine().retention.show()
    if as_json:
        emit_json({info.layer: _policy_json(info) for info in policies})
        return
    click.echo(f"{'layer':<11} {'max_age':>10} {'max_bytes':>12}")
    for info in policies:
        click.echo(_policy_line(info))


@group.command("set")
@click.option("--layer", required=True, help=_LAYER_HELP)
@click.option("--max-age", default=None, help="Remove memories older than this (at least 1h), e.g. 30d.")
@click.option("--max-bytes", default=None, help="Keep the layer under this size (at least 1MiB), e.g. 1GiB.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def set_command(layer: str, max_age: str | None, max_bytes: str | None, as_json: bool) -> None:
    """Set a layer's max age and/or max bytes (a limit not given stays as it was). Audited."""
    info = get_engine().retention.set(layer, max_age=max_age, max_bytes=max_bytes, actor=ACTOR)
    if as_json:
        emit_json({info.layer: _policy_json(info)})
    else:
        click.echo(_policy_line(info))


@group.command("clear")
@click.option("--layer", required=True, help=_LAYER_HELP)
@click.option("--max-age", "clear_age", is_flag=True, help="Clear the max age only.")
@click.option("--max-bytes", "clear_bytes", is_flag=True, help="Clear the max bytes only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def clear_command(layer: str, clear_age: bool, clear_bytes: bool, as_json: bool) -> None:
    """Clear a layer's limits (both unless one is named). Audited."""
    info = get_engine().retention.clear(layer, max_age=clear_age, max_bytes=clear_bytes, actor=ACTOR)
    if as_json:
        emit_json({info.layer: _policy_json(info)})
    else:
        click.echo(_policy_line(info))


def _render(run: RetentionRun, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                layer.layer: {
                    "memories": layer.deleted,
                    "bytes": bytes_freed(layer),
                    "bytes_before": layer.bytes_before,
                    "bytes_after": layer.bytes_after,
                    "cutoff": layer.cutoff.isoformat() if layer.cutoff else None,
                    "dry_run": run.dry_run,
                }
                for layer in run.layers
            }
        )
        return
    if not run.layers:
        click.echo("no layer has a retention policy; nothing to do")
        return
    verb = "would remove" if run.dry_run else "removed"
    for layer in run.layers:
        cut = layer.cutoff.isoformat() if layer.cutoff else "-"
        freed = bytes_freed(layer)
        click.echo(f"{layer.layer:<11} {verb} {layer.deleted:>10} memories {freed:>14} bytes   cut-off {cut}")


@group.command("plan")
@click.option("--json", "as_json", is_flag=True, help="Print JSON keyed by layer.")
def plan_command(as_json: bool) -> None:
    """Per layer, the memories and bytes the next run would remove, and the cut-off. Changes nothing."""
    _render(get_engine().apply_retention(dry_run=True, actor=ACTOR), as_json)


@group.command("apply")
@click.option(
    "--confirm", metavar="PHRASE", default=None, help="The plan's confirm phrase (instead of typing it)."
)
@click.option("--yes", is_flag=True, help="Apply the plan just shown without typing its phrase.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON keyed by layer.")
@click.pass_context
def apply_command(ctx: click.Context, confirm: str | None, yes: bool, as_json: bool) -> None:
    """Apply every layer's policy now, through a plan (backup first, verify; recorded as run by cli)."""
    from jamey_engine.cli.plans import through_plan

    run = through_plan(ctx, "retention", {}, confirm=confirm, yes=yes, quiet=as_json).native
    if run.note:
        click.echo(f"warning: {run.note}", err=True)
    _render(run, as_json)
