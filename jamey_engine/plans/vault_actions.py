"""Actions on backups: restore (keeping keys' security state) and backup-delete, through the vault."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from jamey_engine.errors import NotFound
from jamey_engine.plans.actions import Action, Change, Parameter, Preview, parse_flag, parse_text, register
from jamey_engine.runbooks.common import Check, Checks

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
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
        from jamey_engine.runbooks.restore import choose_backup

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


class BackupDeleteAction(Action):
    name = "backup-delete"
    scope = "admin"
    description = "Remove a backup's archive and catalog entry."
    parameters = (Parameter("backup_id", "the backup to delete", parse_text("backup_id"), required=True),)

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
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
        engine.vault.delete(preview.native.id, actor=actor)
        return Change({"deleted": preview.native.id, "size_bytes": preview.native.size_bytes})

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        try:
            engine.vault.get(preview.native.id)
            gone = False
        except NotFound:
            gone = True
        return Checks(
            "Verification",
            (Check("backup gone", gone, f"{preview.native.id} is {'gone' if gone else 'still listed'}"),),
        )


for _action in (RestoreAction(), BackupDeleteAction()):
    register(_action)
