"""``jamey memory``: store, import, export, search, get, delete, sizes, growth, prune, dedupe and retention."""

from __future__ import annotations

from typing import Any

import click

from jamey_engine.cli.common import emit_json, get_engine, progress_bar
from jamey_engine.durations import parse_duration
from jamey_engine.errors import InvalidInput
from jamey_engine.memory import LAYERS, Memory
from jamey_engine.memory.model import DEFAULT_LIMIT, MAX_LIMIT

_LAYER_HELP = f"Memory layer: {', '.join(LAYERS)}."


def _memory_row(memory: Memory) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": memory.id,
        "layer": memory.layer,
        "content": memory.content,
        "timestamp": memory.timestamp.isoformat(),
    }
    if memory.score is not None:
        row["score"] = round(memory.score, 4)
    return row


@click.group("memory")
def group() -> None:
    """Store, search and maintain the five memory layers."""


@group.command("store")
@click.option("--layer", required=True, help=_LAYER_HELP)
@click.option("--timestamp", default=None, help="ISO 8601 time of the memory (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("text")
def store_command(layer: str, timestamp: str | None, as_json: bool, text: str) -> None:
    """Store TEXT as one memory; returns once it is committed."""
    memory = get_engine().memory.store(layer, text, timestamp=timestamp)
    if as_json:
        emit_json(_memory_row(memory))
    else:
        click.echo(memory.id)


@group.command("import")
@click.option("--layer", required=True, help=_LAYER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("file", type=click.Path(dir_okay=False))
def import_command(layer: str, as_json: bool, file: str) -> None:
    """Import FILE (JSON Lines: {"content": ..., "timestamp": ...}); all lines or none."""
    with progress_bar("import") as progress:
        count = get_engine().memory.import_jsonl(layer, file, progress=progress)
    if as_json:
        emit_json({"layer": layer, "imported": count})
    else:
        click.echo(f"imported {count} memories into {layer}")


@group.command("export")
@click.option("--layer", required=True, help=_LAYER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("file", type=click.Path(dir_okay=False))
def export_command(layer: str, as_json: bool, file: str) -> None:
    """Export every memory of a layer to FILE as JSON Lines, oldest first."""
    with progress_bar("export") as progress:
        count = get_engine().memory.export_jsonl(layer, file, progress=progress)
    if as_json:
        emit_json({"layer": layer, "exported": count, "file": file})
    else:
        click.echo(f"exported {count} memories from {layer} to {file}")


@group.command("search")
@click.option("--layer", required=True, help=_LAYER_HELP)
@click.option(
    "--limit", default=DEFAULT_LIMIT, show_default=True, type=int, help=f"Results to return (1-{MAX_LIMIT})."
)
@click.option("--order", default="score", show_default=True, help="score or newest.")
@click.option("--since", default=None, help="Only memories at or after this ISO 8601 time.")
@click.option("--until", default=None, help="Only memories before this ISO 8601 time.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("query")
def search_command(
    layer: str, limit: int, order: str, since: str | None, until: str | None, as_json: bool, query: str
) -> None:
    """Search a layer with tantivy query syntax (e.g. 'disk AND latency', '"exact phrase"', '*')."""
    found = get_engine().memory.search(layer, query, limit=limit, order=order, since=since, until=until)
    if as_json:
        emit_json([_memory_row(m) for m in found])
        return
    for memory in found:
        score = f"{memory.score:7.3f}  " if memory.score is not None else ""
        click.echo(f"{score}{memory.timestamp.isoformat()}  {memory.id}  {memory.content}")
    if not found:
        click.echo("no memories matched", err=True)


@group.command("get")
@click.option("--layer", required=True, help=_LAYER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("memory_id")
def get_command(layer: str, as_json: bool, memory_id: str) -> None:
    """Show one memory by id."""
    memory = get_engine().memory.get(layer, memory_id)
    if as_json:
        emit_json(_memory_row(memory))
    else:
        click.echo(f"{memory.timestamp.isoformat()}  {memory.id}\n{memory.content}")


@group.command("delete")
@click.option("--layer", required=True, help=_LAYER_HELP)
@click.argument("memory_id")
def delete_command(layer: str, memory_id: str) -> None:
    """Delete one memory by id."""
    get_engine().memory.delete(layer, memory_id)
    click.echo(f"deleted {memory_id} from {layer}")


@group.command("sizes")
@click.option("--json", "as_json", is_flag=True, help="Print JSON keyed by layer.")
def sizes_command(as_json: bool) -> None:
    """Bytes on disk, documents and segments of each layer, and the total."""
    sizes = get_engine().memory.sizes()
    if as_json:
        emit_json(
            {
                layer: {"bytes": s.bytes, "documents": s.documents, "segments": s.segments}
                for layer, s in sizes.layers.items()
            }
        )
        return
    click.echo(f"{'layer':<11} {'documents':>12} {'bytes':>14} {'segments':>9}")
    for layer, s in sizes.layers.items():
        click.echo(f"{layer:<11} {s.documents:>12} {s.bytes:>14} {s.segments:>9}")
    click.echo(f"{'total':<11} {sizes.total_documents:>12} {sizes.total_bytes:>14}")


@group.command("growth")
@click.option("--days", default=30, show_default=True, type=int, help="Window in days.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows {day, layer, documents}.")
def growth_command(days: int, as_json: bool) -> None:
    """Memories per day per layer over the last N days (by memory timestamp, UTC)."""
    rows = get_engine().memory.growth(days)
    if as_json:
        emit_json([{**row, "day": row["day"].isoformat()} for row in rows])
        return
    click.echo(f"{'day':<10} " + " ".join(f"{layer:>11}" for layer in LAYERS))
    by_day: dict[str, dict[str, int]] = {}
    for row in rows:
        by_day.setdefault(row["day"].isoformat(), {})[row["layer"]] = row["documents"]
    for day, counts in by_day.items():
        click.echo(f"{day:<10} " + " ".join(f"{counts.get(layer, 0):>11}" for layer in LAYERS))


_CONFIRM_HELP = "The plan's confirm phrase (instead of typing it)."
_YES_HELP = "Apply the plan just shown without typing its phrase."


@group.command("prune")
@click.option("--layer", "layers", multiple=True, help=f"{_LAYER_HELP} Repeatable.")
@click.option("--all", "all_layers", is_flag=True, help="Prune every layer.")
@click.option("--older-than", required=True, help="Delete memories older than this duration (e.g. 30d).")
@click.option("--dry-run", is_flag=True, help="Report what would go; change nothing.")
@click.option("--confirm", metavar="PHRASE", default=None, help=_CONFIRM_HELP)
@click.option("--yes", is_flag=True, help=_YES_HELP)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON keyed by layer (dry run) or the apply's result."
)
@click.pass_context
def prune_command(
    ctx: click.Context,
    layers: tuple[str, ...],
    all_layers: bool,
    older_than: str,
    dry_run: bool,
    confirm: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete memories older than a duration and reclaim their disk space, through a plan
    (preflight, backup first, prune, verify, one record)."""
    from jamey_engine.cli.plans import echo_result, through_plan

    if bool(layers) == all_layers:
        raise InvalidInput("name the layers to prune with --layer, or pass --all (not both)")
    try:
        delta = parse_duration(older_than, field="--older-than")
    except OverflowError:
        raise InvalidInput(f"--older-than {older_than!r} is too long") from None
    engine = get_engine()
    chosen = None if all_layers else list(layers)
    if not dry_run:
        parameters = {"older_than": older_than, "layer": "all" if all_layers else ",".join(layers)}
        result = through_plan(ctx, "prune", parameters, confirm=confirm, yes=yes, quiet=as_json)
        if as_json:
            emit_json(result.as_dict())
            return
        for layer, r in result.result["layers"].items():
            click.echo(
                f"{layer:<11} deleted {r['deleted']:>10}   bytes {r['bytes_before']} -> {r['bytes_after']}"
            )
        echo_result(result)
        return
    with progress_bar("prune") as progress:
        results = engine.memory.prune(delta, chosen, dry_run=True, progress=progress)
    if as_json:
        emit_json(
            {
                r.layer: {
                    "deleted": r.deleted,
                    "bytes_before": r.bytes_before,
                    "bytes_after": r.bytes_after,
                    "dry_run": r.dry_run,
                }
                for r in results
            }
        )
        return
    for r in results:
        click.echo(f"{r.layer:<11} would delete {r.deleted:>10}   bytes {r.bytes_before} -> {r.bytes_after}")


@group.command("dedupe")
@click.option("--layer", "layers", multiple=True, help=f"{_LAYER_HELP} Repeatable.")
@click.option("--all", "all_layers", is_flag=True, help="Dedupe every layer.")
@click.option("--dry-run", is_flag=True, help="Report the duplicates and the bytes to free; change nothing.")
@click.option("--confirm", metavar="PHRASE", default=None, help=_CONFIRM_HELP)
@click.option("--yes", is_flag=True, help=_YES_HELP)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON keyed by layer (dry run) or the apply's result."
)
@click.pass_context
def dedupe_command(
    ctx: click.Context,
    layers: tuple[str, ...],
    all_layers: bool,
    dry_run: bool,
    confirm: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete exact duplicate memories (ignoring case and whitespace), keeping the oldest of each,
    through a plan (preflight, backup first, dedupe, verify, one record)."""
    from jamey_engine.cli.plans import echo_result, through_plan
    from jamey_engine.memory.layers import check_layers

    if bool(layers) == all_layers:
        raise InvalidInput("name the layers to dedupe with --layer, or pass --all (not both)")
    engine = get_engine()
    chosen = check_layers(None if all_layers else list(layers))
    if not dry_run:
        parameters = {"layer": ",".join(chosen)}
        result = through_plan(ctx, "dedupe", parameters, confirm=confirm, yes=yes, quiet=as_json)
        if as_json:
            emit_json(result.as_dict())
            return
        for layer, r in result.result["layers"].items():
            click.echo(
                f"{layer:<11} deleted {r['deleted']:>10} duplicates in {r['groups']} groups   "
                f"bytes {r['bytes_before']} -> {r['bytes_after']}"
            )
        echo_result(result)
        return
    with progress_bar("dedupe dry run") as progress:
        results = engine.dedupe(chosen, source="cli", dry_run=True, progress=progress).results
    if as_json:
        emit_json(
            {
                r.layer: {
                    "groups": r.groups,
                    "deleted": r.deleted,
                    "repeat_bytes": r.repeat_bytes,
                    "bytes_before": r.bytes_before,
                    "bytes_after": r.bytes_after,
                    "dry_run": r.dry_run,
                }
                for r in results
            }
        )
        return
    for r in results:
        click.echo(
            f"{r.layer:<11} would delete {r.deleted:>10} duplicates in {r.groups} groups   "
            f"bytes {r.bytes_before} -> {r.bytes_after}"
        )


def _add_retention() -> None:
    from jamey_engine.cli.retention import group as retention_group

    group.add_command(retention_group)


_add_retention()
