"""Approvals: the plans waiting for a second person (JAMEY_APPROVALS), which the signed-in key
may decide (planned by another key, of an action its scopes allow), each in full, with Approve
and Reject and a comment. The planner then applies an approved plan where it was made."""

from __future__ import annotations

import streamlit as st

import workbench_ui as ui
from jamey_engine.plans.actions import get_action
from jamey_engine.plans.approvals import approve, reject
from workbench_ui import plans

FLASH = "approvals_flash"

session = ui.require_page("approvals")
st.title("Approvals")
flash = st.session_state.pop(FLASH, None)
if flash:
    st.success(flash)

with ui.shown_errors("Listing the plans waiting for approval"):
    waiting = plans.waiting_for(session.actor, session.key_id, tuple(session.scopes))
    approvals = ", ".join(ui.settings().approvals) or "none"
    st.caption(f"Actions that need a second person's approval (JAMEY_APPROVALS): {approvals}.")
    if not waiting:
        st.info("No plan is waiting for your approval.")
        ui.stop_section()
    for record in waiting:
        with st.container(border=True):
            plans.detail(record)
            with st.form(f"decide_{record.id}"):
                comment = st.text_input("Comment (required: say why)", key=f"comment_{record.id}")
                yes, no = st.columns(2)
                approving = yes.form_submit_button("Approve", type="primary")
                rejecting = no.form_submit_button("Reject")
            if approving or rejecting:
                with ui.shown_errors(f"Deciding plan {record.id}"):
                    actor = plans.acting(get_action(record.action).scope)
                    decide = approve if approving else reject
                    decided = decide(ui.engine(), record.id, actor, comment)
                    st.session_state[FLASH] = (
                        f"Plan {decided.id} ({decided.action}) {decided.status} with your comment; "
                        f"{decided.planned_by} can now apply it."
                        if approving
                        else f"Plan {decided.id} ({decided.action}) rejected with your comment."
                    )
                    st.rerun()
