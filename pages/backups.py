"""Backups: list with status, size and age; create and verify with progress; restore and delete
through a plan (the shared plan component: the diff, the approval, the typed phrase); the
retention plan (why each backup is kept) and retention; and the operation log, which names who
ran each backup, restore, prune and deletion."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput, Unavailable
from jamey_engine.oplog import recent_operations
from jamey_engine.plans.actions import get_action
from jamey_engine.plans.vault_actions import retention_rows
from workbench_ui import charts, plans

FLASH = "backups_flash"  # a success message to show after a rerun
RESTORE_SLOT = "backups_restore"  # the plan component's slots (workbench_ui.plans)
DELETE_SLOT = "backups_delete"
RETENTION_SLOT = "backups_retention"

ui.require_page("backups")
st.title("Backups")
engine = ui.engine()

flash = st.session_state.pop(FLASH, None)
if flash:
    st.success(flash)

# --- create ---------------------------------------------------------------------------------
with ui.shown_errors("The backup"):
    if ui.can("ops:write") and st.button(
        "Create a backup now", type="primary", key="backup_create", icon=":material/backup:"
    ):
        actor = ui.authorize("ops:write")
        info = engine.vault.create(progress=ui.progress_bar("Backing up…"), actor=actor)
        st.session_state[FLASH] = (
            f"Backup {info.id} created: {charts.format_value(info.size_bytes, 'bytes')}, "
            f"{sum(info.documents.values()):,} documents, {info.keys} keys."
        )
        st.rerun()

# --- list -----------------------------------------------------------------------------------
backups: list = []
with ui.shown_errors("Listing the backups"):
    try:
        backups = engine.vault.list(include_remote=bool(engine.settings.backup_remote))
    except Unavailable as err:  # the remote is down: the local backups still list
        st.warning(f"Backups only on the remote are not shown: {err.message}")
        backups = engine.vault.list()
    now = utcnow()
    st.subheader(f"Backups ({len(backups)})")
    if backups:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "id": b.id,
                        "status": b.status,
                        "encrypted": "age" if b.encrypted else "no",
                        "location": b.location,
                        "created": b.created_at,
                        "age": ui.age(b.created_at, now),
                        "size": charts.format_value(b.size_bytes, "bytes"),
                        "documents": sum(b.documents.values()),
                        "keys": b.keys,
                    }
                    for b in backups
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.info("No backups yet. Create one above, or schedule them with JAMEY_BACKUP_INTERVAL.")

ids = [b.id for b in backups]

# --- verify, restore, delete ----------------------------------------------------------------
# A restore and a deletion go through the plan contract (workbench_ui.plans): the plan shows
# what changes (the layers, the tables, the keys a restore would re-enable), waits for a second
# person when JAMEY_APPROVALS names the action, and applies once its phrase is typed.
if ids:
    st.subheader("Verify, restore or delete")
    chosen = st.selectbox("Backup", ids, key="backup_chosen")
    v, p, d = st.columns(3)
    with ui.shown_errors("Verification"):
        if ui.can("ops:write") and v.button("Verify", key="backup_verify", icon=":material/verified:"):
            ui.authorize("ops:write")
            checked = engine.vault.verify(chosen, progress=ui.progress_bar("Verifying…"))
            st.success(f"Backup {checked.id} verified: {checked.status}.")
    if ui.can("admin"):
        reenable = st.checkbox(
            "Re-enable keys revoked or rotated since the backup",
            key="restore_reenable",
            help="Off: a key stopped after the backup stays stopped (the plan names them).",
        )
        trust_unsigned = st.checkbox(
            "Trust an unsigned backup (made before backups were signed)",
            key="restore_trust_unsigned",
            help="An admin's decision, recorded with the restore.",
        )
        with ui.shown_errors("The restore plan"):
            if p.button("Plan a restore", key="backup_plan", icon=":material/restore:"):
                plans.forget(RESTORE_SLOT)
                plans.create(
                    RESTORE_SLOT,
                    "restore",
                    {"backup_id": chosen, "reenable_keys": reenable, "trust_unsigned": trust_unsigned},
                )
        with ui.shown_errors("The deletion plan"):
            if d.button("Plan a deletion", key="backup_delete", icon=":material/delete:"):
                plans.create(DELETE_SLOT, "backup-delete", {"backup_id": chosen})

plans.panel(RESTORE_SLOT, title="Restore plan")
plans.panel(DELETE_SLOT, title="Deletion plan")

# --- retention plan: why each backup is kept -------------------------------------------------
with ui.shown_errors("The retention plan"):
    if backups:
        st.subheader("Retention plan")
        st.caption(
            "What the configured retention (JAMEY_BACKUP_KEEP, _KEEP_DAYS, _KEEP_DAILY, _KEEP_WEEKLY, "
            "_KEEP_MONTHLY, and _REMOTE_KEEP_* off-site) keeps, and why; a backup with no reason goes "
            "at the next retention run. The same table as `jamey backup retention plan`."
        )
        for where, decisions in retention_rows(engine).items():
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "where": where,
                            "id": decision["id"],
                            "created": datetime.fromisoformat(decision["created_at"]),
                            "kept": "yes" if decision["keep"] else "no: deleted next",
                            "why": ", ".join(decision["reasons"]) or "no rule keeps it",
                        }
                        for decision in decisions
                    ],
                    columns=["where", "id", "created", "kept", "why"],
                ),
                hide_index=True,
                width="stretch",
                key=f"retention_plan_{where}",
            )

# --- retention ------------------------------------------------------------------------------
with ui.shown_errors("Retention"):
    st.subheader("Retention")
    retention_scope = get_action("backup-delete").scope
    if not ui.can(retention_scope):
        st.caption(f"Changing backup retention needs the {retention_scope} scope.")
        ui.stop_section()
    current = ui.settings()
    st.caption(
        "Plan what the retention deletes (a backup-delete plan, as from the CLI and the API): the "
        "configured policy, or the two rules below for local backups only."
    )
    with st.form("retention"):
        r1, r2, r3 = st.columns(3)
        use_rules = r1.toggle("Use these rules instead", key="retention_rules")
        keep_last = r2.number_input(
            "Keep the newest",
            min_value=0,
            step=1,
            value=current.backup_keep,
            key="keep_last",
            help="0: no count rule",
        )
        keep_days = r3.number_input(
            "Keep every backup younger than (days)",
            min_value=0,
            step=1,
            value=current.backup_keep_days,
            key="keep_days",
            help="0: no age rule",
        )
        planned = st.form_submit_button("Plan the retention")
    if planned:
        parameters: dict[str, object] = {"retention": True}
        if use_rules:
            if not keep_last and not keep_days:
                raise InvalidInput("Set at least one rule: keep the newest N, or keep days > 0.")
            if keep_last:
                parameters["keep_last"] = int(keep_last)
            if keep_days:
                parameters["keep_days"] = int(keep_days)
        plans.forget(RETENTION_SLOT)
        plans.create(RETENTION_SLOT, "backup-delete", parameters)
plans.panel(RETENTION_SLOT, title="Retention plan to apply")

# --- operation log --------------------------------------------------------------------------
with ui.shown_errors("Reading the operation log"):
    st.subheader("Operation log")
    st.caption("Backups, restores, prunes and deletions by any process, newest first, with who ran them.")
    operations = recent_operations(engine.db, limit=200)
    if operations:
        columns = [
            "at",
            "kind",
            "status",
            "actor",
            "detail",
            "layer",
            "count",
            "size_bytes",
            "duration_seconds",
        ]
        st.dataframe(pd.DataFrame(operations)[columns], hide_index=True, width="stretch")
    else:
        st.caption("No operation recorded yet.")
