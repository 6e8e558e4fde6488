"""``jamey status``: what is in the data dir, at a glance."""

from __future__ import annotations

import click

from jamey_engine.cli.common import emit_json, get_engine


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def group(as_json: bool) -> None:
    """Show the data dir, its database and its memory layers."""
    engine = get_engine()
    settings = engine.settings
    sizes = engine.memory.sizes()
    layers = {layer: {"bytes": s.bytes, "documents": s.documents} for layer, s in sizes.layers.items()}
    payload = {
        "data_dir": str(settings.data_dir),
        "backup_dir": str(settings.backup_dir),
        "layers": layers,
    }
    if as_json:
        emit_json(payload)
        return
    click.echo(f"data dir:   {payload['data_dir']}")
    click.echo(f"backup dir: {payload['backup_dir']}")
    for layer, size in layers.items():
        click.echo(f"  {layer:<11} {size['documents']:>10} documents {size['bytes']:>14} bytes")
