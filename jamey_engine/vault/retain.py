"""Deleting backups, and which ones the retention rules keep (local, and the remote's copies).

The rules themselves (newest kept always, last N, days, daily/weekly/monthly tiers) are
``tiers.py``; this module applies them to a vault's backups.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from jamey_engine.durations import utcnow
from jamey_engine.errors import Busy, InvalidInput
from jamey_engine.fsutil import fsync_path
from jamey_engine.vault import offsite, tiers
from jamey_engine.vault.catalog import id_time
from jamey_engine.vault.tiers import Decision, Policy

if TYPE_CHECKING:
    from jamey_engine.vault.core import Vault

log = logging.getLogger(__name__)


def delete(vault: Vault, backup_id: str, *, actor: str | None = None) -> None:
    """Remove a backup's archives (plain and encrypted) and catalog entry, recorded in the
    operation log (kind ``delete``, by ``actor``); raises NotFound if it does not exist and
    Busy while a rekey of it runs."""
    started = time.monotonic()
    info = vault.get(backup_id)
    if vault.catalog._running(backup_id):
        raise Busy(f"backup {backup_id} is being written or re-encrypted; delete it when that has finished")
    # Every form: a rekey that died between its rename and its unlink leaves two.
    for path in vault.catalog.archive_forms(backup_id):
        path.unlink(missing_ok=True)
    vault.catalog.sidecar_path(backup_id).unlink(missing_ok=True)
    fsync_path(vault.settings.backup_dir)
    log.info("backup %s deleted", backup_id)
    vault.record("delete", "success", started, size_bytes=info.size_bytes, detail=backup_id, actor=actor)


def retain(
    vault: Vault, keep_last: int | None = None, keep_days: int | None = None, *, actor: str | None = None
) -> list[str]:
    """Delete backups outside the retention rules; return the deleted local ids (oldest first).

    Kept: always the newest backup, the newest ``keep_last``, those younger than
    ``keep_days`` days. With neither rule given, the settings' policy applies (see
    ``tiers``: JAMEY_BACKUP_KEEP, 0 keeping all unless a tier is set, _KEEP_DAYS, _KEEP_DAILY,
    _KEEP_WEEKLY, _KEEP_MONTHLY), and with JAMEY_BACKUP_REMOTE the remote's own policy
    (JAMEY_BACKUP_REMOTE_KEEP_*) to the copies there. Raises InvalidInput naming the value
    when ``keep_last`` < 1 or ``keep_days`` < 0.
    """
    if keep_last is None and keep_days is None:
        plans = retention_plan(vault)
    else:
        if keep_last is not None and (isinstance(keep_last, bool) or keep_last < 1):
            raise InvalidInput(f"keep_last {keep_last!r} must be 1 or more")
        if keep_days is not None and (isinstance(keep_days, bool) or keep_days < 0):
            raise InvalidInput(f"keep_days {keep_days!r} must be 0 or more")
        policy = Policy(last=keep_last or 0, days=keep_days or 0)
        backups = [(info.id, info.created_at) for info in vault.list()]
        plans = {
            "local": tiers.plan(backups, policy if not policy.keeps_everything else Policy(last=1), utcnow())
        }
    deleted = []
    for decision in reversed(plans["local"]):
        if not decision.keep:
            delete(vault, decision.id, actor=actor)
            deleted.append(decision.id)
    if "remote" in plans:
        offsite.prune_remote(vault, [d.id for d in plans["remote"] if not d.keep], actor=actor)
    return deleted


def retention_plan(vault: Vault) -> dict[str, list[Decision]]:
    """The settings' retention plan: ``{"local": [...], "remote": [...]}`` (remote only with
    JAMEY_BACKUP_REMOTE), every backup newest first with why it is kept, or no reason when
    it would go. Changes nothing; raises Unavailable when the remote cannot be listed."""
    settings = vault.settings
    policy = Policy.from_settings(settings)
    if settings.backup_keep == 0 and not (policy.daily or policy.weekly or policy.monthly):
        policy = Policy()  # JAMEY_BACKUP_KEEP=0 keeps everything, as it always has
    now = utcnow()
    local = [(info.id, info.created_at) for info in vault.list()]
    plans = {"local": tiers.plan(local, policy, now)}
    if settings.backup_remote:
        remote = [(backup_id, id_time(backup_id)) for backup_id in offsite.remote_ids(vault)]
        plans["remote"] = tiers.plan(remote, Policy.from_settings(settings, remote=True), now)
    return plans
