"""``jamey keys``: create, list, show, rotate, revoke and limit API keys; import the legacy key; audit."""

from __future__ import annotations

from typing import Any

import click

from jamey_engine.cli.common import emit_json, get_engine
from jamey_engine.durations import parse_duration
from jamey_engine.keys import SCOPE_DESCRIPTIONS, SCOPES, KeyInfo
from jamey_engine.keys.scopes import DEFAULT_SCOPES
from jamey_engine.keys.usage import FLAGS

ACTOR = "cli"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _info_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "status": info.status,
        "scopes": list(info.scopes),
        "rate_limit": info.rate_limit,
        "created_at": info.created_at,
        "expires_at": info.expires_at,
        "revoked_at": info.revoked_at,
        "grace_until": info.grace_until,
        "last_used_at": info.last_used_at,
        "rotated_from": info.rotated_from,
        "rotated_to": info.rotated_to,
        "legacy": info.legacy,
    }


def _print_info(info: KeyInfo) -> None:
    for label, value in (
        ("id", info.id),
        ("name", info.name),
        ("status", info.status),
        ("scopes", " ".join(info.scopes)),
        ("rate limit", info.rate_limit + ("" if info.custom_rate_limit else " (default)")),
        ("created", _when(info.created_at)),
        ("expires", _when(info.expires_at)),
        ("revoked", _when(info.revoked_at)),
        ("grace until", _when(info.grace_until)),
        ("last used", _when(info.last_used_at)),
        ("rotated from", info.rotated_from or "-"),
        ("rotated to", info.rotated_to or "-"),
    ):
        click.echo(f"{label + ':':<13} {value}")


def _print_created(key: str, info: KeyInfo, verb: str) -> None:
    click.echo(
        f"{verb} API key {info.id} ({info.name}); scopes {' '.join(info.scopes)}, limit {info.rate_limit}"
    )
    click.echo("Store this key now; it is not shown again:")
    click.echo(key)


@click.group("keys")
def group() -> None:
    """API keys of the Jamey service (secrets are shown once, at creation)."""


@group.command("create")
@click.option("--name", required=True, help="A name people recognise; unique among active keys.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="Repeatable [default: memory:read]. "
    + "; ".join(f"{scope}: {SCOPE_DESCRIPTIONS[scope]}" for scope in SCOPES)
    + ".",
)
@click.option("--rate-limit", metavar="LIMIT", help="e.g. 60/minute [default: JAMEY_DEFAULT_RATE_LIMIT].")
@click.option("--expires-in", metavar="DURATION", help="e.g. 30d or 12h [default: never].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with id and key).")
def create(
    name: str, scopes: tuple[str, ...], rate_limit: str | None, expires_in: str | None, as_json: bool
) -> None:
    """Create a key and print it once."""
    expiry = parse_duration(expires_in, field="--expires-in") if expires_in is not None else None
    created = get_engine().keys.create(
        name, scopes=scopes or DEFAULT_SCOPES, rate_limit=rate_limit, expires_in=expiry, actor=ACTOR
    )
    if as_json:
        emit_json({"key": created.key, **_info_json(created.info)})
        return
    _print_created(created.key, created.info, "Created")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(as_json: bool) -> None:
    """List every key (never a secret), newest first."""
    infos = get_engine().keys.list()
    if as_json:
        emit_json([_info_json(info) for info in infos])
        return
    if not infos:
        click.echo("no API keys yet; create one with `jamey keys create --name NAME`")
        return
    click.echo(
        f"{'ID':<12}  {'NAME':<24} {'STATUS':<9} {'LIMIT':<13} {'EXPIRES':<20} {'LAST USED':<20} SCOPES"
    )
    for info in infos:
        click.echo(
            f"{info.id:<12}  {info.name[:24]:<24} {info.status:<9} {info.rate_limit:<13} "
            f"{_when(info.expires_at):<20} {_when(info.last_used_at):<20} {' '.join(info.scopes)}"
        )


@group.command("show")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(key_id: str, as_json: bool) -> None:
    """Show one key."""
    info = get_engine().keys.show(key_id)
    if as_json:
        emit_json(_info_json(info))
        return
    _print_info(info)


@group.command("rotate")
@click.argument("key_id")
@click.option(
    "--grace",
    metavar="DURATION",
    help="Keep the old key working this long (e.g. 1h) [default: stop at once].",
)
@click.option(
    "--confirm", metavar="PHRASE", default=None, help="The plan's confirm phrase (rotate key NAME)."
)
@click.option("--yes", is_flag=True, help="Apply the plan just shown without typing its phrase.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with id and key of the new key).")
@click.pass_context
def rotate(
    ctx: click.Context, key_id: str, grace: str | None, confirm: str | None, yes: bool, as_json: bool
) -> None:
    """Replace a key with a new one of the same name, scopes and limit, through a plan; print the
    new key once."""
    from jamey_engine.cli.plans import through_plan

    if grace is not None:
        parse_duration(grace, field="--grace")
    parameters = {"key_id": key_id, "grace": grace}
    created = through_plan(ctx, "key-rotate", parameters, confirm=confirm, yes=yes, quiet=as_json).native
    if as_json:
        emit_json({"key": created.key, "replaces": key_id, **_info_json(created.info)})
        return
    _print_created(created.key, created.info, f"Rotated {key_id} to")
    click.echo(f"The old key {key_id} stops " + ("at once." if grace is None else f"after {grace}."))


@group.command("revoke")
@click.argument("key_ids", metavar="KEY_ID...", nargs=-1, required=True)
@click.option("--confirm", metavar="PHRASE", default=None, help="The plan's confirm phrase.")
@click.option("--yes", is_flag=True, help="Apply the plan just shown without typing its phrase.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def revoke(
    ctx: click.Context, key_ids: tuple[str, ...], confirm: str | None, yes: bool, as_json: bool
) -> None:
    """Stop one or more keys now, through a plan."""
    from jamey_engine.cli.plans import through_plan

    through_plan(ctx, "key-revoke", {"key_ids": list(key_ids)}, confirm=confirm, yes=yes, quiet=as_json)
    infos = [get_engine().keys.show(key_id) for key_id in key_ids]
    if as_json:
        emit_json(_info_json(infos[0]) if len(infos) == 1 else [_info_json(info) for info in infos])
        return
    for info in infos:
        click.echo(f"revoked API key {info.id} ({info.name})")


@group.command("set-limit")
@click.argument("key_id")
@click.argument("limit")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def set_limit(key_id: str, limit: str, as_json: bool) -> None:
    """Change a key's rate limit, such as 100/minute."""
    info = get_engine().keys.set_limit(key_id, limit, actor=ACTOR)
    if as_json:
        emit_json(_info_json(info))
        return
    click.echo(f"API key {info.id} ({info.name}) is now limited to {info.rate_limit}")


@group.command("import-legacy")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def import_legacy(as_json: bool) -> None:
    """Move the deprecated API_KEY variable into the database (its hash only)."""
    info = get_engine().keys.import_legacy(actor=ACTOR)
    if as_json:
        emit_json(_info_json(info))
        return
    click.echo(
        f"API_KEY imported as key {info.id} ({info.name}); manage it like any key, "
        "and remove API_KEY from the environment when convenient"
    )


@group.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="How many events.")
@click.option("--key", "key_id", metavar="ID", help="Only this key's events.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit(limit: int, key_id: str | None, as_json: bool) -> None:
    """The audit trail of key events, newest first."""
    events = get_engine().keys.audit(limit=limit, key_id=key_id)
    if as_json:
        emit_json(events)
        return
    if not events:
        click.echo("no key events yet")
        return
    for event in events:
        click.echo(
            f"{_when(event['at'])}  {event['event']:<18} {event['key_id']:<12} {event['key_name'][:24]:<24} "
            f"by {event['actor']}" + (f"  {event['detail']}" if event["detail"] else "")
        )


@group.command("scopes")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def scopes(as_json: bool) -> None:
    """List the scopes a key can hold, with what each allows."""
    if as_json:
        emit_json([{"scope": scope, "description": SCOPE_DESCRIPTIONS[scope]} for scope in SCOPES])
        return
    for scope in SCOPES:
        click.echo(f"{scope:<13} {SCOPE_DESCRIPTIONS[scope]}")


@group.command("usage")
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Only the last N days [default: all time].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def usage(days: float | None, as_json: bool) -> None:
    """Requests, 429s and errors per key, counted by every service process."""
    rows = get_engine().keys.usage_report(days)
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'ID':<12}  {'NAME':<24} {'REQUESTS':>10} {'429s':>8} {'ERRORS':>8}  LAST USED")
    for row in rows:
        click.echo(
            f"{row['id']:<12}  {row['name'][:24]:<24} {row['requests']:>10,} {row['rate_limited']:>8,} "
            f"{row['errors']:>8,}  {_when(row['last_used_at'])}"
        )


@group.command("stale")
@click.option("--unused-for", metavar="DURATION", help="e.g. 90d [default: JAMEY_KEY_STALE_DAYS days].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stale(unused_for: str | None, as_json: bool) -> None:
    """Working keys nobody has used for a while (never used: counted from creation)."""
    period = parse_duration(unused_for, field="--unused-for") if unused_for is not None else None
    engine = get_engine()
    flagged = {info.id: flags for info, flags in engine.keys.hygiene()}
    infos = engine.keys.stale(period)
    if as_json:
        emit_json([{**_info_json(info), "flags": list(flagged.get(info.id, ()))} for info in infos])
        return
    if not infos:
        click.echo("no stale keys")
        return
    for info in infos:
        notes = ", ".join(FLAGS[flag] for flag in flagged.get(info.id, ()))
        click.echo(f"{info.id:<12}  {info.name[:24]:<24} last used {_when(info.last_used_at)}  ({notes})")
