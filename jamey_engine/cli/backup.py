"""``jamey backup``: create, list, verify, restore, delete and prune PhoenixVault backups."""

from __future__ import annotations

import click

from jamey_engine.cli.common import emit_json, get_engine, progress_bar
from jamey_engine.sizes import format_bytes
from jamey_engine.vault import BackupInfo, RestorePlan


def _info_dict(info: BackupInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "created_at": info.created_at,
        "size_bytes": info.size_bytes,
        "status": info.status,
        "documents": info.documents,
        "keys": info.keys,
        "path": info.path,
        "label": info.label,
        "engine_version": info.engine_version,
        "files": info.files,
        "verified_at": info.verified_at,
        "problem": info.problem,
        "encrypted": info.encrypted,
        "signed": info.signed,
        "location": info.location,
        "remote_checked_at": info.remote_checked_at,
    }


def _plan_dict(plan: RestorePlan) -> dict[str, object]:
    return {
        "backup_id": plan.backup_id,
        "dry_run": plan.dry_run,
        "layers": {layer: {"now": now, "backup": then} for layer, (now, then) in plan.layers.items()},
        "keys": {"now": plan.keys[0], "backup": plan.keys[1]},
        "safety_backup_id": plan.safety_backup_id,
        "signed": plan.signed,
    }


def _echo_plan(plan: RestorePlan) -> None:
    click.echo(f"{'':<12} {'now':>10} {'backup':>10} {'change':>10}")
    rows = [(layer, now, then) for layer, (now, then) in plan.layers.items()]
    rows.append(("keys", *plan.keys))
    for name, now, then in rows:
        click.echo(f"{name:<12} {now:>10} {then:>10} {then - now:>+10}")


@click.group("backup")
def group() -> None:
    """PhoenixVault: backups of the memory layers and the database, and verified restores."""


@group.command("create")
@click.option("--json", "as_json", is_flag=True, help="Print the new backup as JSON.")
def create(as_json: bool) -> None:
    """Take a backup now (safe while the service runs)."""
    from jamey_engine.errors import Conflict
    from jamey_engine.plans.actors import Actor
    from jamey_engine.plans.vault_actions import apply_backup_retention

    engine = get_engine()
    with progress_bar("backup") as progress:
        info = engine.vault.create(progress, actor="cli")
    # A manual backup applies the backup retention too, through its backup-delete plan.
    note = None
    try:
        applied = apply_backup_retention(engine, Actor.cli())
        if applied is not None:
            gone = applied.result["deleted_local"]
            note = f"retention (plan {applied.plan.id}) deleted {len(gone)} older backup(s)" + (
                f" and {len(applied.result['deleted_remote'])} remote copy(ies)"
                if applied.result["deleted_remote"]
                else ""
            )
    except Conflict as err:  # approval required: the backup stands, the retention waits
        note = f"retention not applied: {err.message}"
    if as_json:
        emit_json(_info_dict(info))
        if note:
            click.echo(note, err=True)
        return
    total = sum(info.documents.values())
    click.echo(
        f"backup {info.id} created: {format_bytes(info.size_bytes)}, {total} documents, {info.keys} keys"
    )
    click.echo(f"  {info.path}")
    if note:
        click.echo(f"  {note}")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_backups(as_json: bool) -> None:
    """List backups, newest first, with their size and status."""
    vault = get_engine().vault
    infos = vault.list(include_remote=bool(vault.settings.backup_remote))
    if as_json:
        emit_json([_info_dict(info) for info in infos])
        return
    if not infos:
        click.echo(f"no backups in {get_engine().settings.backup_dir}")
        return
    click.echo(
        f"{'ID':<24} {'CREATED (UTC)':<20} {'SIZE':>10} {'STATUS':<10} {'ENCRYPTED':<9} "
        f"{'LOCATION':<8} {'DOCS':>8} {'KEYS':>5}  LABEL"
    )
    for info in infos:
        created = info.created_at.strftime("%Y-%m-%d %H:%M:%S")
        docs = sum(info.documents.values())
        click.echo(
            f"{info.id:<24} {created:<20} {format_bytes(info.size_bytes):>10} {info.status:<10} "
            f"{'age' if info.encrypted else 'no':<9} {info.location:<8} {docs:>8} {info.keys:>5}  {info.label}"
        )


TRUST_UNSIGNED_HELP = (
    "Accept a backup made before backups were signed (admin; recorded in the operation log). "
    "Only for a backup known to be genuine: an unsigned archive can be forged."
)


@group.command("verify")
@click.argument("backup_id", metavar="ID")
@click.option("--trust-unsigned", is_flag=True, help=TRUST_UNSIGNED_HELP)
def verify(backup_id: str, trust_unsigned: bool) -> None:
    """Check the manifest's signature and recompute every checksum; exit non-zero naming the damaged file."""
    with progress_bar("verify") as progress:
        info = get_engine().vault.verify(backup_id, progress, trust_unsigned=trust_unsigned, actor="cli")
    click.echo(f"backup {info.id} is ok: {info.files} files, {format_bytes(info.total_bytes)} checked")


@group.command("restore")
@click.argument("backup_id", metavar="ID")
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
@click.option("--confirm", metavar="PHRASE", default=None, help="The plan's confirm phrase (restore ID).")
@click.option("--yes", is_flag=True, help="Apply the plan just shown without typing its phrase.")
@click.option("--reenable-keys", is_flag=True, help="Bring back keys revoked or rotated since the backup.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the plan (dry run) or the apply's result as JSON."
)
@click.option("--trust-unsigned", is_flag=True, help=TRUST_UNSIGNED_HELP)
@click.pass_context
def restore(
    ctx: click.Context,
    backup_id: str,
    dry_run: bool,
    confirm: str | None,
    yes: bool,
    reenable_keys: bool,
    as_json: bool,
    trust_unsigned: bool,
) -> None:
    """Restore a backup through a plan: verify, safety backup, stage and check, switch atomically,
    verify. Keys revoked or rotated since the backup stay so unless --reenable-keys."""
    from jamey_engine.cli.plans import echo_result, through_plan
    from jamey_engine.vault.crypto import require_decryption

    vault = get_engine().vault
    vault.ensure_local(backup_id, trust_unsigned=trust_unsigned, actor="cli")
    plan = vault.plan_restore(backup_id)
    if not plan.signed and not as_json:
        note = (
            "restoring it needs --trust-unsigned" if not trust_unsigned else "trusted with --trust-unsigned"
        )
        click.echo(f"backup {plan.backup_id} is unsigned (made before backups were signed): {note}", err=True)
    if dry_run:
        if as_json:
            emit_json(_plan_dict(plan))
        else:
            click.echo(f"restoring {plan.backup_id} would change (nothing changed now):")
            _echo_plan(plan)
        return
    if vault.get(backup_id).encrypted:  # no way to decrypt it: one line, before showing a plan
        require_decryption(vault.backup_keys(), f"backup {backup_id}")
    if not as_json:
        _echo_plan(plan)
    parameters = {"backup_id": backup_id, "reenable_keys": reenable_keys, "trust_unsigned": trust_unsigned}
    result = through_plan(ctx, "restore", parameters, confirm=confirm, yes=yes, quiet=as_json)
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(f"backup {result.result['backup_id']} restored")
    if result.result.get("safety_backup_id"):
        click.echo(f"  the previous state is in safety backup {result.result['safety_backup_id']}")
    echo_result(result)


@group.command("pull")
@click.argument("backup_id", metavar="ID")
@click.option("--trust-unsigned", is_flag=True, help=TRUST_UNSIGNED_HELP)
def pull(backup_id: str, trust_unsigned: bool) -> None:
    """Fetch a backup that is only on JAMEY_BACKUP_REMOTE into the backup directory, and verify it."""
    info = get_engine().vault.pull(backup_id, trust_unsigned=trust_unsigned, actor="cli")
    click.echo(f"backup {info.id} pulled and verified: {info.path}")


@group.command("push")
@click.option("--all", "force", is_flag=True, help="Copy every backup not on the remote, due or not.")
def push(force: bool) -> None:
    """Copy to JAMEY_BACKUP_REMOTE the backups whose off-site copy is due (failed ones back off)."""
    engine = get_engine()
    if not engine.settings.backup_remote:
        raise click.ClickException("JAMEY_BACKUP_REMOTE is not set; there is nowhere to copy backups to")
    states = engine.vault.push(actor="cli", force=force)
    if not states:
        click.echo("nothing to copy: every backup is off-site or waiting for its next attempt")
    failed = 0
    for backup_id, state in states.items():
        if state["status"] == "ok":
            click.echo(f"{backup_id}: copied and checked")
        else:
            failed += 1
            click.echo(
                f"{backup_id}: failed ({state['error']}); next attempt {state['next_attempt_at']}", err=True
            )
    if failed:
        raise SystemExit(1)


@group.command("rekey")
@click.argument("backup_id", metavar="ID")
def rekey(backup_id: str) -> None:
    """Re-encrypt a backup to the current JAMEY_BACKUP_RECIPIENTS, atomically (a plain one gets encrypted)."""
    with progress_bar("rekey") as progress:
        info = get_engine().vault.rekey(backup_id, progress, actor="cli")
    click.echo(f"backup {info.id} re-encrypted: {info.path}")


@group.command("delete")
@click.argument("backup_id", metavar="ID")
@click.option(
    "--confirm", metavar="PHRASE", default=None, help="The plan's confirm phrase (delete backup ID)."
)
@click.option("--yes", is_flag=True, help="Apply the plan just shown without typing its phrase.")
@click.pass_context
def delete(ctx: click.Context, backup_id: str, confirm: str | None, yes: bool) -> None:
    """Delete one backup, through a plan."""
    from jamey_engine.cli.plans import through_plan

    through_plan(ctx, "backup-delete", {"backup_id": backup_id}, confirm=confirm, yes=yes)
    click.echo(f"backup {backup_id} deleted")


@group.command("prune")
@click.option("--keep", "keep", type=click.IntRange(min=1), required=True, help="Keep the newest N backups.")
@click.option(
    "--keep-days", type=click.IntRange(min=0), default=None, help="Also keep backups younger than D days."
)
@click.option("--confirm", metavar="PHRASE", default=None, help="The plan's confirm phrase.")
@click.option("--yes", is_flag=True, help="Apply the plan just shown without typing its phrase.")
@click.pass_context
def prune(ctx: click.Context, keep: int, keep_days: int | None, confirm: str | None, yes: bool) -> None:
    """Delete old local backups, keeping the newest N (and, with --keep-days, the recent ones),
    through a backup-delete plan."""
    from jamey_engine.cli.plans import through_plan
    from jamey_engine.plans.vault_actions import retention_rows

    rows = retention_rows(get_engine(), keep, keep_days)
    if all(row["keep"] for row in rows["local"]):
        click.echo("nothing to prune")
        return
    parameters: dict[str, object] = {"retention": True, "keep_last": keep, "keep_days": keep_days}
    result = through_plan(ctx, "backup-delete", parameters, confirm=confirm, yes=yes, quiet=True)
    for backup_id in result.result["deleted_local"]:
        click.echo(f"deleted {backup_id}")


@group.group("retention")
def retention() -> None:
    """Tiered retention (JAMEY_BACKUP_KEEP, _KEEP_DAYS, _KEEP_DAILY, _KEEP_WEEKLY, _KEEP_MONTHLY)."""


@retention.command("plan")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def retention_plan(as_json: bool) -> None:
    """List every backup (local, and on JAMEY_BACKUP_REMOTE) with why it is kept, or that it would go."""
    from jamey_engine.plans.vault_actions import retention_rows

    plans = retention_rows(get_engine())
    if as_json:
        emit_json(plans)
        return
    for where, rows in plans.items():
        kept = sum(row["keep"] for row in rows)
        click.echo(f"{where}: {kept} kept, {len(rows) - kept} would go")
        for row in rows:
            verdict = ", ".join(row["reasons"]) if row["keep"] else "would go"
            created = row["created_at"][:16].replace("T", " ")
            click.echo(f"  {row['id']:<24} {created}  {verdict}")


@retention.command("apply")
@click.option(
    "--confirm",
    metavar="PHRASE",
    default=None,
    help="The plan's confirm phrase (delete N local and M remote backups).",
)
@click.option("--yes", is_flag=True, help="Apply the plan just shown without typing its phrase.")
@click.option("--json", "as_json", is_flag=True, help="Print the apply's result as JSON.")
@click.pass_context
def retention_apply(ctx: click.Context, confirm: str | None, yes: bool, as_json: bool) -> None:
    """Delete what the tiered retention drops (local and remote separately), through a backup-delete plan."""
    from jamey_engine.cli.plans import echo_result, through_plan

    result = through_plan(ctx, "backup-delete", {"retention": True}, confirm=confirm, yes=yes, quiet=as_json)
    if as_json:
        emit_json(result.as_dict())
        return
    for backup_id in result.result["deleted_local"]:
        click.echo(f"deleted {backup_id}")
    for backup_id in result.result["deleted_remote"]:
        click.echo(f"deleted {backup_id} (remote copy)")
    echo_result(result)
