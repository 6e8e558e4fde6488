"""``jamey db``: bring the key and audit database's schema up to date, or say where it is."""

from __future__ import annotations

import click

from jamey_engine.cli.common import emit_json, get_engine
from jamey_engine.db import head_revision


@click.group("db")
def group() -> None:
    """The key, audit and operation-log database (SQLite or PostgreSQL)."""


@group.command("upgrade")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def upgrade(as_json: bool) -> None:
    """Apply every pending migration (also done automatically on first use)."""
    db = get_engine().db
    before = db.current_revision()
    after = db.upgrade()
    if as_json:
        emit_json({"database": db.safe_url, "from": before, "to": after})
        return
    if before == after:
        click.echo(f"database {db.safe_url} is already at the newest revision {after}")
    else:
        click.echo(f"database {db.safe_url} upgraded from {before or 'empty'} to {after}")


@group.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def current(as_json: bool) -> None:
    """Show the database's schema revision and the newest one this jamey knows."""
    db = get_engine().db
    revision = db.current_revision()
    head = head_revision()
    if as_json:
        emit_json(
            {"database": db.safe_url, "current": revision, "head": head, "up_to_date": revision == head}
        )
        return
    state = "up to date" if revision == head else f"behind (newest is {head}; run `jamey db upgrade`)"
    click.echo(f"database {db.safe_url} is at revision {revision or 'none (empty)'}: {state}")
