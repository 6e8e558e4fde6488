"""API keys: create (shown once), list with filters, rotate and revoke behind confirmations,
and the audit trail. Every change is checked against the signed-in key first and audited
with its name as the actor."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import parse_duration, utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.keys import SCOPES, STATUSES

PENDING = "keys_pending"  # ("rotate" | "revoke", key_id, name, grace text)
NEW_SECRET = "keys_new_secret"  # noqa: S105 -- a session-state key; (label, plaintext) to show once after a rerun

session = ui.require_session()
st.title("API keys")
engine = ui.engine()


def _show_secret(label: str, plaintext: str) -> None:
    st.success(label)
    st.code(plaintext, language=None)
    st.caption("Copy it now with the button at the right of the box: it is shown only this once.")


shown = st.session_state.pop(NEW_SECRET, None)
if shown:
    _show_secret(*shown)

# --- create ---------------------------------------------------------------------------------
with st.expander("Create a key", expanded=True), ui.shown_errors("Creating the key"):
    with st.form("create_key", clear_on_submit=False):
        name = st.text_input("Name", key="create_name", help="Who or what uses the key, e.g. ingest-bot")
        scopes = st.multiselect("Scopes", SCOPES, default=["memory:read"], key="create_scopes")
        left, right = st.columns(2)
        rate_limit = left.text_input(
            "Rate limit",
            key="create_limit",
            placeholder=ui.settings().default_rate_limit,
            help="Such as 60/minute or 10/second; empty uses JAMEY_DEFAULT_RATE_LIMIT",
        )
        expiry = right.text_input(
            "Expires in", key="create_expiry", placeholder="never", help="Such as 30d or 12h"
        )
        create = st.form_submit_button("Create key", type="primary")
    if create:
        problems: list[str] = []
        clean_name = name.strip()
        if not clean_name:
            problems.append("Name must not be empty.")
        if not scopes:
            problems.append("Pick at least one scope.")
        expires_in: timedelta | None = None
        if expiry.strip():
            try:
                expires_in = parse_duration(expiry, field="expiry")
            except InvalidInput as err:
                problems.append(err.message)
        if problems:
            for problem in problems:
                st.error(problem)
        else:
            actor = ui.authorize()
            created = engine.keys.create(
                clean_name,
                scopes=tuple(scopes),
                rate_limit=rate_limit.strip() or None,
                expires_in=expires_in,
                actor=actor,
            )
            _show_secret(f"Created key {created.info.name!r} ({created.info.id}).", created.key)

# --- the table ------------------------------------------------------------------------------
keys: list = []
with ui.shown_errors("Listing the keys"):
    keys = engine.keys.list()
    st.subheader(f"Keys ({len(keys)})")
    f1, f2, f3 = st.columns([2, 2, 3])
    statuses = f1.multiselect("Status", STATUSES, default=[], key="filter_status", placeholder="any")
    scope_filter = f2.multiselect("Scope", SCOPES, default=[], key="filter_scope", placeholder="any")
    text = f3.text_input("Name or id contains", key="filter_text")
    rows = [
        {
            "name": k.name,
            "id": k.id,
            "status": k.status,
            "scopes": ", ".join(k.scopes),
            "rate limit": k.rate_limit,
            "last used": k.last_used_at,
            "created": k.created_at,
            "expires": k.expires_at,
            "revoked": k.revoked_at,
            "rotated to": k.rotated_to or "",
        }
        for k in keys
        if (not statuses or k.status in statuses)
        and (not scope_filter or set(scope_filter) & set(k.scopes))
        and (not text or text.lower() in k.name.lower() or text.lower() in k.id.lower())
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.info("No key matches the filters." if keys else "No keys yet. Create one above.")

# --- rotate and revoke ----------------------------------------------------------------------


def _clear_pending() -> None:
    st.session_state.pop(PENDING, None)


@st.dialog("Confirm", on_dismiss=_clear_pending)
def _confirm(action: str, key_id: str, key_name: str, grace_text: str) -> None:
    if action == "rotate":
        st.write(
            f"Rotate **{key_name}** (`{key_id}`)? A new key is issued; the old one keeps working for "
            f"**{grace_text or 'no time at all'}** and then stops."
        )
    else:
        st.write(f"Revoke **{key_name}** (`{key_id}`)? Clients using it are refused from now on.")
    if session.key_id == key_id:
        st.warning(
            "This is the key you are signed in with: the workbench signs you out once it stops working."
        )
    yes, no = st.columns(2)
    if no.button("Cancel", key="confirm_cancel"):
        _clear_pending()
        st.rerun()
    if yes.button(f"Yes, {action}", key="confirm_yes", type="primary"):
        with ui.shown_errors(f"{action.capitalize()} of {key_name}"):
            actor = ui.authorize()
            if action == "rotate":
                grace = parse_duration(grace_text, field="grace") if grace_text else None
                created = engine.keys.rotate(key_id, grace=grace, actor=actor)
                st.session_state[NEW_SECRET] = (
                    f"Rotated {key_name!r}: the new key is {created.info.id}.",
                    created.key,
                )
            else:
                engine.keys.revoke(key_id, actor=actor)
                st.toast(f"Revoked {key_name}")
            _clear_pending()
            st.rerun()


live = [k for k in keys if k.status not in ("revoked", "expired")]
if live:
    st.subheader("Rotate or revoke")
    with ui.shown_errors("Preparing the action"):
        labels = {f"{k.name} ({k.id}, {k.status})": k for k in live}
        c1, c2, c3, c4 = st.columns([3, 2, 1, 1], vertical_alignment="bottom")
        chosen_label = c1.selectbox("Key", list(labels), key="action_key")
        grace_text = c2.text_input("Grace period for rotation", value="1h", key="action_grace")
        chosen = labels[chosen_label] if chosen_label else None
        if chosen is not None and c3.button("Rotate…", key="rotate"):
            if grace_text.strip():
                parse_duration(grace_text, field="grace")  # InvalidInput shows inline, nothing changes
            st.session_state[PENDING] = ("rotate", chosen.id, chosen.name, grace_text.strip())
        if chosen is not None and c4.button("Revoke…", key="revoke"):
            st.session_state[PENDING] = ("revoke", chosen.id, chosen.name, "")

pending = st.session_state.get(PENDING)
if pending:
    _confirm(*pending)

# --- audit ----------------------------------------------------------------------------------
with ui.shown_errors("Reading the audit trail"):
    st.subheader("Audit trail")
    events = engine.keys.audit(limit=200)
    if events:
        st.dataframe(pd.DataFrame(events), hide_index=True, width="stretch")
    else:
        st.caption("Nothing audited yet.")
    st.caption(f"As of {utcnow():%Y-%m-%d %H:%M:%S} UTC")
