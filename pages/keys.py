"""API keys: create (shown once), list with usage sparklines, hygiene flags and filters, per-key
traffic and top keys, rotate and revoke (one, or the stale ones in bulk) through plans (the
shared plan component: the keys affected, the approval, the phrase to type), and the audit trail. Every change is checked against the signed-in key first and audited with
its name as the actor."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import parse_duration, utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.keys import ACCEPTED_STATUSES, SCOPE_DESCRIPTIONS, SCOPES, STATUSES
from jamey_engine.keys.scopes import DEFAULT_SCOPES
from jamey_engine.keys.usage import FLAGS, hourly_counts, usage_series
from workbench_ui import plans

ROTATE_SLOT = "keys_rotate"  # the plan component's slots (workbench_ui.plans)
REVOKE_SLOT = "keys_revoke"
BULK_SLOT = "keys_bulk_revoke"
RANGES = {"24 hours": 1, "7 days": 7, "30 days": 30}
NEW_SECRET = "keys_new_secret"  # noqa: S105 -- a session-state key; (label, plaintext) to show once after a rerun

session = ui.require_page("keys")
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
        scopes = st.multiselect(
            "Scopes",
            SCOPES,
            default=list(DEFAULT_SCOPES),
            key="create_scopes",
            format_func=lambda scope: f"{scope}: {SCOPE_DESCRIPTIONS[scope]}",
            help="  \n".join(f"**{scope}**: {SCOPE_DESCRIPTIONS[scope]}" for scope in SCOPES),
        )
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
            actor = ui.authorize("admin")
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
flags_by_key: dict[str, tuple[str, ...]] = {}
with ui.shown_errors("Listing the keys"):
    keys = engine.keys.list()
    flags_by_key = {info.id: flags for info, flags in engine.keys.hygiene(infos=keys)}
    now = utcnow()
    day_ago = now - timedelta(hours=23)
    recent = usage_series(engine.db, day_ago, now)
    st.subheader(f"Keys ({len(keys)})")
    f1, f2, f3, f4 = st.columns([2, 2, 2, 3])
    statuses = f1.multiselect("Status", STATUSES, default=[], key="filter_status", placeholder="any")
    scope_filter = f2.multiselect("Scope", SCOPES, default=[], key="filter_scope", placeholder="any")
    flag_filter = f3.multiselect(
        "Hygiene",
        list(FLAGS),
        default=[],
        key="filter_flag",
        placeholder="any",
        format_func=FLAGS.__getitem__,
    )
    text = f4.text_input("Name or id contains", key="filter_text")
    rows = [
        {
            "name": k.name,
            "id": k.id,
            "status": k.status,
            "requests, 24 h": hourly_counts(recent, k.id, day_ago, 24),
            "hygiene": ", ".join(FLAGS[flag] for flag in flags_by_key.get(k.id, ())),
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
        and (not flag_filter or set(flag_filter) & set(flags_by_key.get(k.id, ())))
        and (not text or text.lower() in k.name.lower() or text.lower() in k.id.lower())
    ]
    if rows:
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            width="stretch",
            column_config={"requests, 24 h": st.column_config.LineChartColumn("requests, 24 h", y_min=0)},
        )
    else:
        st.info("No key matches the filters." if keys else "No keys yet. Create one above.")

# --- usage ----------------------------------------------------------------------------------
with ui.shown_errors("Reading the key usage"):
    st.subheader("Usage")
    range_label = st.segmented_control("Range", list(RANGES), default="24 hours", key="usage_range")
    days = RANGES.get(str(range_label), 1)
    usage = pd.DataFrame(engine.keys.usage_report(days))
    if usage.empty or not usage["requests"].any():
        st.caption("No requests counted in this range.")
    else:
        top1, top2 = st.columns(2)
        columns = ["name", "id", "requests", "rate_limited", "errors"]
        top1.markdown("**Top keys by requests**")
        top1.dataframe(usage.nlargest(5, "requests")[columns], hide_index=True, width="stretch")
        top2.markdown("**Top keys by 429s**")
        throttled = usage[usage["rate_limited"] > 0]
        if throttled.empty:
            top2.caption("No key was rate limited in this range.")
        else:
            top2.dataframe(throttled.nlargest(5, "rate_limited")[columns], hide_index=True, width="stretch")

    by_label = {f"{k.name} ({k.id})": k for k in keys}
    if by_label:
        detail_label = st.selectbox("Key detail", list(by_label), key="detail_key")
        info = by_label[detail_label] if detail_label else None
        if info is not None:
            facts = {
                "scopes": ", ".join(info.scopes),
                "rate limit": info.rate_limit,
                "status": info.status,
                "created": ui.age(info.created_at, now),
                "expires": info.expires_at.strftime("%Y-%m-%d %H:%M UTC") if info.expires_at else "never",
                "last used": ui.age(info.last_used_at, now) if info.last_used_at else "never",
            }
            st.dataframe(pd.DataFrame([facts]), hide_index=True, width="stretch")
            since = now - timedelta(days=days)
            series = usage_series(engine.db, since, now, [info.id])
            hours = days * 24
            start = now - timedelta(hours=hours - 1)
            stamps = [start + timedelta(hours=i) for i in range(hours)]
            figure = go.Figure()
            for column, label in (("requests", "requests"), ("rate_limited", "429s"), ("errors", "errors")):
                figure.add_trace(
                    go.Scatter(x=stamps, y=hourly_counts(series, info.id, start, hours, column), name=label)
                )
            figure.update_layout(
                title=f"{info.name}: requests per hour",
                height=300,
                margin={"l": 10, "r": 10, "t": 40, "b": 10},
            )
            st.plotly_chart(figure, key="key_detail_chart")
            trail = engine.keys.audit(limit=50, key_id=info.id)
            if trail:
                st.dataframe(pd.DataFrame(trail), hide_index=True, width="stretch")

# --- rotate and revoke ----------------------------------------------------------------------


def _rotated(result: dict) -> None:
    change = result["result"]
    st.session_state[NEW_SECRET] = (
        f"Rotated {change['name']!r}: the new key is {change['new_id']}.",
        result["key"],
    )


live = [k for k in keys if k.status in ACCEPTED_STATUSES]
if live:
    st.subheader("Rotate or revoke")
    with ui.shown_errors("Planning the action"):
        labels = {f"{k.name} ({k.id}, {k.status})": k for k in live}
        c1, c2, c3, c4 = st.columns([3, 2, 1, 1], vertical_alignment="bottom")
        chosen_label = c1.selectbox("Key", list(labels), key="action_key")
        grace_text = c2.text_input("Grace period for rotation", value="1h", key="action_grace")
        chosen = labels[chosen_label] if chosen_label else None
        if chosen is not None and c3.button("Plan rotation", key="rotate"):
            if grace_text.strip():
                parse_duration(grace_text, field="grace")  # InvalidInput shows inline, nothing changes
            plans.forget(REVOKE_SLOT)
            plans.create(
                ROTATE_SLOT, "key-rotate", {"key_id": chosen.id, "grace": grace_text.strip() or None}
            )
        if chosen is not None and c4.button("Plan revocation", key="revoke"):
            plans.forget(ROTATE_SLOT)
            plans.create(REVOKE_SLOT, "key-revoke", {"key_ids": [chosen.id]})
        if chosen is not None and session.key_id == chosen.id:
            st.warning(
                "This is the key you are signed in with: the workbench signs you out once it stops working."
            )

plans.panel(ROTATE_SLOT, title="Rotation plan", on_applied=_rotated)
plans.panel(REVOKE_SLOT, title="Revocation plan")


# --- stale keys, in bulk --------------------------------------------------------------------
stale = [k for k in keys if "stale" in flags_by_key.get(k.id, ())]
if stale:
    st.subheader(f"Stale keys ({len(stale)})")
    st.caption(f"Working keys unused for {ui.settings().key_stale_days} days (JAMEY_KEY_STALE_DAYS).")
    stale_labels = {f"{k.name} ({k.id})": k for k in stale}
    picked = st.multiselect("Select", list(stale_labels), default=list(stale_labels), key="bulk_pick")
    with ui.shown_errors("Planning the revocation of the stale keys"):
        if st.button("Plan revoking the selected stale keys", key="bulk_revoke", disabled=not picked):
            plans.create(BULK_SLOT, "key-revoke", {"key_ids": [stale_labels[label].id for label in picked]})
plans.panel(BULK_SLOT, title="Stale keys revocation plan")

# --- audit ----------------------------------------------------------------------------------
with ui.shown_errors("Reading the audit trail"):
    st.subheader("Audit trail")
    events = engine.keys.audit(limit=200)
    if events:
        st.dataframe(pd.DataFrame(events), hide_index=True, width="stretch")
    else:
        st.caption("Nothing audited yet.")
    st.caption(f"As of {utcnow():%Y-%m-%d %H:%M:%S} UTC")
