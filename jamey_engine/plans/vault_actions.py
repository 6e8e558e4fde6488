"""Actions on backups: restore (keeping keys' security state) and backup-delete, through the vault."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from jamey_engine.errors import InvalidInput, NotFound
from jamey_engine.plans.actions import Action, Change, Parameter, Preview, parse_flag, parse_text, register
from jamey_engine.preflight.checks import Check, Checks

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.plans.actors import Actor
    from jamey_engine.plans.applying import ApplyResult
    from jamey_engine.progress import Progress

# Tables whose rows a restore replaces and whose change between plan and apply makes it stale.
# The operation log and alert notifications are history that only grows (a restore keeps them).
_WATCHED_TABLES = ("api_keys", "key_events", "retention_policies", "retention_events")


def backup_key_rows(engine: Engine, backup_id: str) -> list[dict[str, Any]]:
    """The api_keys rows inside backup ``backup_id``, read in one verified pass over the archive
    (only database.json is unpacked, to a private temporary directory in the data dir).

    Raises NotFound, BackupCorrupt (naming the damaged member), BackupLocked.
    """

    from jamey_engine.vault.archive import scan_archive
    from jamey_engine.vault.crypto import is_encrypted
    from jamey_engine.vault.manifest import DATABASE_NAME

    vault = engine.vault
    info = vault.get(backup_id)
    keys = vault.backup_keys() if is_encrypted(info.path) else None
    with tempfile.TemporaryDirectory(prefix=".plan-restore-", dir=engine.settings.data_dir) as where:
        result = scan_archive(
            info.path,
            extract_to=Path(where),
            keep=lambda name: name == DATABASE_NAME,
            keys=keys,
            label=f"backup {backup_id}",
        )
        vault.check_scan(backup_id, result)
        data = json.loads((Path(where) / DATABASE_NAME).read_bytes())
    return list(data["tables"].get("api_keys", []))


def _current_keys(engine: Engine) -> list[dict[str, Any]]:
    from jamey_engine.models import ApiKey

    table = ApiKey.__table__
    with engine.db.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(*table.c).order_by(table.c.id)).mappings()]


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class RestoreAction(Action):
    name = "restore"
    scope = "admin"
    backup_first = True  # the vault's safety backup of now, taken inside the restore
    description = "Replace the memory layers and database rows with a verified backup's."
    parameters = (
        Parameter("backup_id", "the backup to restore (default: the newest)", parse_text("backup_id")),
        Parameter(
            "reenable_keys",
            "true: bring back keys revoked or rotated since the backup",
            parse_flag("reenable_keys"),
            default=False,
        ),
        Parameter(
            "trust_unsigned",
            "true: restore a backup made before backups were signed (an admin's decision, recorded)",
            parse_flag("trust_unsigned"),
            default=False,
        ),
    )

    def check(self, raw: Any) -> dict[str, Any]:
        checked = super().check(raw)
        checked["reenable_keys"] = bool(checked["reenable_keys"])
        checked["trust_unsigned"] = bool(checked["trust_unsigned"])
        return checked

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        from jamey_engine.keys.security_state import merge_keys
        from jamey_engine.preflight.restore_steps import choose_backup

        if params["backup_id"]:  # a backup only on the remote is pulled (and verified) first
            engine.vault.ensure_local(params["backup_id"], trust_unsigned=params["trust_unsigned"])
        backup = choose_backup(engine, params["backup_id"] or "")
        params["backup_id"] = backup.id
        current = _current_keys(engine)
        merge = merge_keys(
            current, backup_key_rows(engine, backup.id), [], [], reenable_keys=params["reenable_keys"]
        )
        diff = engine.vault.plan_restore(backup.id)
        layers = [
            {"layer": layer, "now": now, "backup": then, "change": then - now}
            for layer, (now, then) in diff.layers.items()
        ]
        tables = [
            {"table": table, "now": now, "backup": then} for table, (now, then) in (diff.tables or {}).items()
        ]
        summary = {
            "backup_id": backup.id,
            "backup_created_at": backup.created_at.isoformat(),
            "layers": layers,
            "tables": tables,
            "keys": merge.as_dict(),
            "reenable_keys": params["reenable_keys"],
            "signed": diff.signed,
            "trust_unsigned": params["trust_unsigned"],
        }
        state = {
            "backup": [backup.id, backup.size_bytes],
            "layers": sorted([layer, now] for layer, (now, _) in diff.layers.items()),
            "tables": sorted([t, now] for t, (now, _) in (diff.tables or {}).items() if t in _WATCHED_TABLES),
            "keys": [
                [row["id"], _iso(row["revoked_at"]), row["rotated_to"], _iso(row["grace_until"])]
                for row in current
            ],
        }
        return Preview(summary, state, f"restore {backup.id}", diff)

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        backup_id = preview.summary["backup_id"]
        done = engine.vault.restore(
            backup_id,
            progress=progress,
            safety_backup=True,
            actor=actor,
            reenable_keys=params["reenable_keys"],
            trust_unsigned=params["trust_unsigned"],
        )
        result = {
            "backup_id": backup_id,
            "safety_backup_id": done.safety_backup_id,
            **preview.summary["keys"],
        }
        return Change(result, done, backup_id=done.safety_backup_id)

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        checks = []
        for row in preview.summary["layers"]:
            now = engine.memory.count(row["layer"])
            checks.append(
                Check(
                    f"{row['layer']}: documents",
                    now == row["backup"],
                    f"{now} now, {row['backup']} in the backup",
                )
            )
        for key in preview.summary["keys"]["kept_stopped"]:
            status = engine.keys.show(key["id"]).status
            checks.append(
                Check(
                    f"key {key['name']}: still stopped", status in ("revoked", "rotating"), f"status {status}"
                )
            )
        return Checks("Verification", tuple(checks))


def _parse_count(name: str, *, minimum: int) -> Any:
    def parse(value: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise InvalidInput(f"parameter {name!r} is {value!r}; use a whole number") from None
        if isinstance(value, bool) or number < minimum:
            raise InvalidInput(f"parameter {name!r} is {value!r}; use {minimum} or more")
        return number

    return parse


class BackupDeleteAction(Action):
    """Delete one backup (``backup_id``), or apply the tiered backup retention (``retention``):
    every local backup and every remote copy the settings' policies would drop, local and
    remote separately. The digest is the set deleted, so a backup made (or removed) between
    plan and apply that changes it makes the plan stale."""

    name = "backup-delete"
    scope = "admin"
    description = "Remove a backup's archive and catalog entry, or the backups tiered retention drops."
    parameters = (
        Parameter("backup_id", "the backup to delete", parse_text("backup_id")),
        Parameter(
            "retention",
            "true: delete what the tiered retention (JAMEY_BACKUP_KEEP_*, _REMOTE_KEEP_*) drops",
            parse_flag("retention"),
            default=False,
        ),
        Parameter(
            "keep_last",
            "with retention: keep only the newest N local backups (instead of the settings' policy)",
            _parse_count("keep_last", minimum=1),
        ),
        Parameter(
            "keep_days",
            "with retention: also keep local backups younger than D days (instead of the settings' policy)",
            _parse_count("keep_days", minimum=0),
        ),
    )

    def check(self, raw: Any) -> dict[str, Any]:
        checked = super().check(raw)
        checked["retention"] = bool(checked["retention"])
        if bool(checked["backup_id"]) == checked["retention"]:
            raise InvalidInput(
                "backup-delete needs exactly one of backup_id (one backup) or retention=true "
                "(what the tiered retention drops)"
            )
        if not checked["retention"] and (
            checked["keep_last"] is not None or checked["keep_days"] is not None
        ):
            raise InvalidInput("keep_last and keep_days go with retention=true")
        return checked

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        if params["retention"]:
            return _retention_preview(engine, params.get("keep_last"), params.get("keep_days"))
        info = engine.vault.get(params["backup_id"])
        summary = {
            "backup_id": info.id,
            "created_at": info.created_at.isoformat(),
            "size_bytes": info.size_bytes,
            "status": info.status,
            "label": info.label,
            "documents": info.documents,
        }
        return Preview(summary, [info.id, info.size_bytes], f"delete backup {info.id}", info)

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        if params["retention"]:
            from jamey_engine.vault import offsite

            local, remote = preview.state["local"], preview.state["remote"]
            for number, backup_id in enumerate(local):  # oldest first (ids sort by time)
                progress(number, len(local) + len(remote), f"deleting backup {backup_id}")
                engine.vault.delete(backup_id, actor=actor)
            if remote:
                progress(len(local), len(local) + len(remote), "deleting remote copies")
                offsite.prune_remote(engine.vault, list(remote), actor=actor)
            return Change({"deleted_local": local, "deleted_remote": remote})
        engine.vault.delete(preview.native.id, actor=actor)
        return Change({"deleted": preview.native.id, "size_bytes": preview.native.size_bytes})

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        if params["retention"]:
            from jamey_engine.vault import offsite

            left = {info.id for info in engine.vault.list()}
            checks = [
                Check(
                    f"backup {backup_id} gone",
                    backup_id not in left,
                    "gone" if backup_id not in left else "still listed",
                )
                for backup_id in preview.state["local"]
            ]
            if preview.state["remote"]:
                on_remote = set(offsite.remote_ids(engine.vault))
                checks += [
                    Check(
                        f"remote copy of {backup_id} gone",
                        backup_id not in on_remote,
                        "gone" if backup_id not in on_remote else "still on the remote",
                    )
                    for backup_id in preview.state["remote"]
                ]
            return Checks("Verification", tuple(checks))
        try:
            engine.vault.get(preview.native.id)
            gone = False
        except NotFound:
            gone = True
        return Checks(
            "Verification",
            (Check("backup gone", gone, f"{preview.native.id} is {'gone' if gone else 'still listed'}"),),
        )


def retention_rows(
    engine: Engine, keep_last: int | None = None, keep_days: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The settings' backup retention, for every door: ``{"local": [...], "remote": [...]}``
    (remote only with JAMEY_BACKUP_REMOTE), each backup newest first as ``{"id", "created_at"
    (ISO 8601), "keep", "reasons"}`` ("daily 2026-12-05", "weekly 2026-W48", "newest"…; none
    when it would go). With ``keep_last``/``keep_days``, those rules instead, local only (as
    ``jamey backup prune``). Changes nothing; raises Unavailable when the remote cannot be listed."""
    if keep_last is None and keep_days is None:
        plans = engine.vault.retention_plan()
    else:
        from jamey_engine.durations import utcnow
        from jamey_engine.vault import tiers

        policy = tiers.Policy(last=keep_last or 0, days=keep_days or 0)
        if policy.keeps_everything:
            policy = tiers.Policy(last=1)
        backups = [(info.id, info.created_at) for info in engine.vault.list()]
        plans = {"local": tiers.plan(backups, policy, utcnow())}
    return {
        where: [
            {"id": d.id, "created_at": d.created_at.isoformat(), "keep": d.keep, "reasons": list(d.reasons)}
            for d in decisions
        ]
        for where, decisions in plans.items()
    }


def _retention_preview(engine: Engine, keep_last: int | None = None, keep_days: int | None = None) -> Preview:
    rows = retention_rows(engine, keep_last, keep_days)
    # Oldest first: a deletion stopped half-way has removed the oldest ones.
    local = sorted(row["id"] for row in rows["local"] if not row["keep"])
    remote = sorted(row["id"] for row in rows.get("remote", []) if not row["keep"])
    summary = {
        "retention": True,
        "local": rows["local"],
        "remote": rows.get("remote"),
        "delete_local": local,
        "delete_remote": remote,
    }
    phrase = f"delete {len(local)} local and {len(remote)} remote backups"
    return Preview(summary, {"local": local, "remote": remote}, phrase, rows)


def apply_backup_retention(engine: Engine, actor: Actor) -> ApplyResult | None:
    """Apply the tiered backup retention through a ``backup-delete`` plan (the path every door
    and every backup, scheduled or manual, takes); None when it would delete nothing (no plan is
    stored then). Raises Conflict naming the plan when JAMEY_APPROVALS asks for a second key,
    and the errors of ``plans.applying.plan_and_apply``."""
    from jamey_engine.plans.applying import plan_and_apply

    preview = _retention_preview(engine)
    if not (preview.state["local"] or preview.state["remote"]):
        return None
    return plan_and_apply(engine, "backup-delete", {"retention": True}, actor)


for _action in (RestoreAction(), BackupDeleteAction()):
    register(_action)
