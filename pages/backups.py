"""Backups: list with status, size and age; create and verify with progress; restore with
the dry-run diff and a typed confirmation; delete; retention; and the operation log, which
names who ran each backup, restore, prune and deletion."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput, Unavailable
from jamey_engine.oplog import recent_operations
from workbench_ui import charts

FLASH = "backups_flash"  # a success message to show after a rerun
PLAN = "backups_restore_plan"  # (backup_id, rows) of the last restore dry run
PENDING_DELETE = "backups_pending_delete"

ui.require_session("ops:read")
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


def _clear_delete() -> None:
    st.session_state.pop(PENDING_DELETE, None)


@st.dialog("Delete backup", on_dismiss=_clear_delete)
def _confirm_delete(backup_id: str) -> None:
    st.write(f"Delete backup **{backup_id}**? Its archive is removed from disk.")
    yes, no = st.columns(2)
    if no.button("Cancel", key="delete_cancel"):
        _clear_delete()
        st.rerun()
    if yes.button("Yes, delete", type="primary", key="delete_yes"):
        with ui.shown_errors(f"Deleting {backup_id}"):
            actor = ui.authorize("admin")
            engine.vault.delete(backup_id, actor=actor)
            st.session_state[FLASH] = f"Deleted backup {backup_id}."
            _clear_delete()
            st.rerun()


if ids:
    st.subheader("Verify, restore or delete")
    chosen = st.selectbox("Backup", ids, key="backup_chosen")
    v, p, d = st.columns(3)
    with ui.shown_errors("Verification"):
        if ui.can("ops:write") and v.button("Verify", key="backup_verify", icon=":material/verified:"):
            ui.authorize("ops:write")
            checked = engine.vault.verify(chosen, progress=ui.progress_bar("Verifying…"))
            st.success(f"Backup {checked.id} verified: {checked.status}.")
    with ui.shown_errors("The restore dry run"):
        if ui.can("admin") and p.button("Plan a restore", key="backup_plan", icon=":material/restore:"):
            plan = engine.vault.plan_restore(chosen)
            rows = [
                {
                    "what": f"memory: {layer}",
                    "now": now_count,
                    "after restore": backup_count,
                    "change": backup_count - now_count,
                }
                for layer, (now_count, backup_count) in plan.layers.items()
            ]
            rows.append(
                {
                    "what": "API keys",
                    "now": plan.keys[0],
                    "after restore": plan.keys[1],
                    "change": plan.keys[1] - plan.keys[0],
                }
            )
            st.session_state[PLAN] = (plan.backup_id, rows)
    if ui.can("admin") and d.button("Delete…", key="backup_delete", icon=":material/delete:"):
        st.session_state[PENDING_DELETE] = chosen

    plan_state = st.session_state.get(PLAN)
    if plan_state and plan_state[0] in ids:
        plan_id, rows = plan_state
        with ui.shown_errors("The restore"):
            st.markdown(f"**Restore dry run for {plan_id}**: what the data would look like afterwards.")
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            st.warning(
                "A restore replaces every memory layer and the key database with the backup's. "
                "A safety backup of the current state is taken first."
            )
            with st.form("restore"):
                typed = st.text_input(f"Type the backup id ({plan_id}) to confirm", key="restore_typed")
                go = st.form_submit_button("Restore", type="primary")
            if go:
                if typed.strip() != plan_id:
                    raise InvalidInput(
                        f"Typed {typed.strip()!r}, which is not the backup id {plan_id}; nothing restored."
                    )
                actor = ui.authorize("admin")
                engine.vault.restore(plan_id, progress=ui.progress_bar("Restoring…"), actor=actor)
                st.session_state.pop(PLAN, None)
                st.session_state[FLASH] = f"Restored backup {plan_id}."
                st.rerun()

pending_delete = st.session_state.get(PENDING_DELETE)
if pending_delete:
    _confirm_delete(pending_delete)

# --- retention ------------------------------------------------------------------------------
with ui.shown_errors("Retention"):
    st.subheader("Retention")
    if not ui.can("admin"):
        st.caption("Changing backup retention needs the admin scope.")
        ui.stop_section()
    current = ui.settings()
    with st.form("retention"):
        r1, r2 = st.columns(2)
        keep_last = r1.number_input(
            "Keep the newest",
            min_value=0,
            step=1,
            value=current.backup_keep,
            key="keep_last",
            help="0: no count rule",
        )
        keep_days = r2.number_input(
            "Keep every backup younger than (days)",
            min_value=0,
            step=1,
            value=current.backup_keep_days,
            key="keep_days",
            help="0: no age rule",
        )
        apply = st.form_submit_button("Apply retention")
    if apply:
        if not keep_last and not keep_days:
            raise InvalidInput("Set at least one rule: keep the newest N, or keep days > 0.")
        actor = ui.authorize("admin")
        deleted = engine.vault.retain(
            keep_last=int(keep_last) or None, keep_days=int(keep_days) or None, actor=actor
        )
        st.session_state[FLASH] = (
            f"Retention deleted {len(deleted)} backup(s): {', '.join(deleted)}."
            if deleted
            else "Retention kept every backup."
        )
        st.rerun()

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
