"""Memory: sizes and documents per layer, growth over time, search (memory:read: it shows what
memories say), pruning and deduping (through a plan: the shared plan component shows what would
go, the approval, the phrase to type, the progress and the result), and retention policies
(edited behind a confirmation showing what they would remove; applied now through a plan; the
schedule's next and last runs; the size chart with each layer's cap)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import format_duration, parse_duration, utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.keys.scopes import MEMORY_CONTENT
from jamey_engine.memory import LAYERS
from jamey_engine.retention import last_run, next_scheduled_run, preview_policy
from jamey_engine.sizes import bytes_freed
from workbench_ui import charts, plans

PRUNE_SLOT = "memory_prune"  # the plan component's slots (workbench_ui.plans)
DEDUPE_SLOT = "memory_dedupe"
RETENTION_SLOT = "memory_retention"

ui.require_page("memory")
st.title("Memory")
engine = ui.engine()

# --- sizes ----------------------------------------------------------------------------------
with ui.shown_errors("Reading the index sizes"):
    sizes = engine.memory.sizes()
    a, b = st.columns(2)
    a.metric("Documents", f"{sizes.total_documents:,}")
    b.metric("Index size", charts.format_value(sizes.total_bytes, "bytes"))
    table = pd.DataFrame(
        [
            {
                "layer": s.layer,
                "documents": s.documents,
                "size": charts.format_value(s.bytes, "bytes"),
                "bytes": s.bytes,
                "segments": s.segments,
            }
            for s in sizes.layers.values()
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")

# --- growth ---------------------------------------------------------------------------------
with ui.shown_errors("Reading the growth"):
    st.subheader("Growth")
    days = st.select_slider("Days", options=[7, 14, 30, 90], value=30, key="growth_days")
    growth = engine.memory.growth(days=days)
    if any(row["documents"] for row in growth):
        st.plotly_chart(charts.growth_figure(growth), key="growth_chart")
    else:
        st.info(f"No documents added in the last {days} days.")

# --- retention ------------------------------------------------------------------------------
RETENTION_REVIEW = "memory_retention_review"  # (layer, max_age text, max_bytes text, plan row)
RETENTION_DONE = "memory_retention_done"  # (message, note) after a save or an apply


def _text(value: str) -> str | None:
    return value.strip() or None


st.subheader("Retention")
retention_done = st.session_state.pop(RETENTION_DONE, None)
if retention_done:
    message, note = retention_done
    st.success(message)
    if note:
        st.warning(note)

with ui.shown_errors("Reading the retention policies"):
    policies = engine.retention.show()
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "layer": info.layer,
                    "max_age": info.as_dict()["max_age"] or "–",
                    "max_bytes": charts.format_value(info.max_bytes, "bytes") if info.max_bytes else "–",
                    "set by": info.set_by or "",
                    "set at": info.set_at,
                }
                for info in policies
            ]
        ),
        hide_index=True,
        width="stretch",
        key="retention_policies",
    )
    now = utcnow()
    upcoming = next_scheduled_run(engine.db, engine.settings.retention_interval)
    previous = last_run(engine.db)
    schedule = (
        "The schedule is off (JAMEY_RETENTION_INTERVAL is empty)."
        if upcoming is None
        else f"Next scheduled run: **{upcoming:%Y-%m-%d %H:%M} UTC** "
        f"(every {format_duration(engine.settings.retention_interval or timedelta())})."
    )
    if previous is None:
        st.caption(f"{schedule} No retention run yet.")
    else:
        outcome = "succeeded" if previous["status"] == "success" else f"failed: {previous['detail']}"
        st.caption(
            f"{schedule} Last run {ui.age(previous['at'], now)} by {previous['actor']} {outcome}; "
            f"{previous['deleted']:,} memories, {charts.format_value(previous['freed_bytes'], 'bytes')} removed."
        )
    caps = {info.layer: info.max_bytes for info in policies}
    st.plotly_chart(
        charts.size_cap_figure({s.layer: s.bytes for s in engine.memory.sizes().layers.values()}, caps),
        key="retention_sizes",
    )

with ui.shown_errors("Editing a retention policy"):
    if not ui.can("admin"):
        st.caption("Changing a retention policy needs the admin scope.")
        ui.stop_section()
    with st.form("retention"):
        c1, c2, c3 = st.columns([2, 2, 2])
        edit_layer = c1.selectbox("Layer", LAYERS, key="retention_layer")
        current = next(info for info in policies if info.layer == edit_layer)
        max_age_text = c2.text_input(
            "Max age",
            value=current.as_dict()["max_age"] or "",
            key="retention_max_age",
            help="Such as 30d; empty: none",
        )
        max_bytes_text = c3.text_input(
            "Max bytes",
            value=current.as_dict()["max_bytes_text"] or "",
            key="retention_max_bytes",
            help="Such as 1GiB or 500MB; empty: none",
        )
        review = st.form_submit_button("Review")
    if review:
        st.session_state.pop(RETENTION_REVIEW, None)
        ui.authorize("admin")
        row = preview_policy(engine, edit_layer, max_age=_text(max_age_text), max_bytes=_text(max_bytes_text))
        st.session_state[RETENTION_REVIEW] = (edit_layer, _text(max_age_text), _text(max_bytes_text), row)

    pending = st.session_state.get(RETENTION_REVIEW)
    if pending:
        p_layer, p_age, p_bytes, p_row = pending
        freed = bytes_freed(p_row)
        cut = f", everything before {p_row.cutoff:%Y-%m-%d %H:%M:%S} UTC" if p_row.cutoff else ""
        st.write(
            f"With max age **{p_age or 'none'}** and max bytes **{p_bytes or 'none'}**, the next run would "
            f"remove **{p_row.deleted:,} memories** ({charts.format_value(freed, 'bytes')}) from "
            f"**{p_layer}**{cut}."
        )
        if st.button(f"Save the {p_layer} policy", type="primary", key="retention_confirm"):
            actor = ui.authorize("admin")
            engine.retention.replace(p_layer, max_age=p_age, max_bytes=p_bytes, actor=actor)
            st.session_state.pop(RETENTION_REVIEW, None)
            st.session_state[RETENTION_DONE] = (f"Saved the retention policy of {p_layer}.", None)
            st.rerun()

with ui.shown_errors("Applying retention"):
    if not ui.can("ops:write"):
        st.caption("Applying retention now needs the ops:write scope.")
        ui.stop_section()
    if st.button("Plan applying retention now", key="retention_apply"):
        plans.create(RETENTION_SLOT, "retention", {})
plans.panel(RETENTION_SLOT, title="Retention plan")

# --- search ---------------------------------------------------------------------------------
with ui.shown_errors("Searching"):
    st.subheader("Search")
    if not ui.can(MEMORY_CONTENT):
        st.caption("Searching shows what memories say, which needs the memory:read scope.")
        ui.stop_section()
    with st.form("search"):
        c1, c2, c3, c4 = st.columns([2, 4, 1, 1], vertical_alignment="bottom")
        layer = c1.selectbox("Layer", LAYERS, key="search_layer")
        query = c2.text_input("Query", key="search_query", placeholder='e.g. deploy AND "rollback plan"')
        order = c3.selectbox("Order", ("score", "newest"), key="search_order")
        limit = int(c4.number_input("Limit", min_value=1, max_value=500, value=20, key="search_limit"))
        searched = st.form_submit_button("Search")
    if searched:
        if not query.strip():
            st.error("Query must not be empty.")
        else:
            ui.authorize(MEMORY_CONTENT)
            hits = engine.memory.search(layer, query, limit=limit, order=order)
            if hits:
                st.dataframe(
                    pd.DataFrame(
                        [
                            {"id": m.id, "timestamp": m.timestamp, "score": m.score, "content": m.content}
                            for m in hits
                        ]
                    ),
                    hide_index=True,
                    width="stretch",
                )
            else:
                st.info(f"No memory in {layer} matches {query!r}.")

# --- prune and dedupe -----------------------------------------------------------------------
# Both go through the plan contract (workbench_ui.plans): the same preflight, backup first,
# verify and record as from the CLI, the API and the runbooks.
st.subheader("Prune")

with ui.shown_errors("Pruning"):
    if not ui.can("ops:write"):
        st.caption("Pruning needs the ops:write scope.")
        ui.stop_section()
    with st.form("prune"):
        c1, c2 = st.columns([1, 3])
        older_text = c1.text_input("Older than", value="30d", key="prune_older", help="Such as 30d or 12h")
        layers = c2.multiselect("Layers", LAYERS, default=list(LAYERS), key="prune_layers")
        dry = st.form_submit_button("Plan the prune")
    if dry:
        if not layers:
            raise InvalidInput("Pick at least one layer to prune.")
        parse_duration(older_text, field="older than")
        plans.create(PRUNE_SLOT, "prune", {"older_than": older_text.strip(), "layer": ",".join(layers)})
plans.panel(PRUNE_SLOT, title="Prune plan")

st.subheader("Dedupe")
with ui.shown_errors("Deduping"):
    if not ui.can("ops:write"):
        st.caption("Deduping needs the ops:write scope.")
        ui.stop_section()
    with st.form("dedupe"):
        dedupe_layers = st.multiselect("Layers", LAYERS, default=list(LAYERS), key="dedupe_layers")
        dedupe_go = st.form_submit_button("Plan the dedupe")
    if dedupe_go:
        if not dedupe_layers:
            raise InvalidInput("Pick at least one layer to dedupe.")
        plans.create(DEDUPE_SLOT, "dedupe", {"layer": ",".join(dedupe_layers)})
plans.panel(DEDUPE_SLOT, title="Dedupe plan")
