"""Memory: sizes and documents per layer, growth over time, search, and pruning (a dry run
first, then a confirmation, with progress and the result)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import parse_duration
from jamey_engine.errors import InvalidInput
from jamey_engine.memory import LAYERS
from workbench_ui import charts

PLAN = "memory_prune_plan"  # (older_than text, layers tuple, rows) of the last dry run
DONE = "memory_prune_done"  # (rows, note) of the last real prune, shown after the rerun

ui.require_session("ops:read")
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

# --- search ---------------------------------------------------------------------------------
with ui.shown_errors("Searching"):
    st.subheader("Search")
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

# --- prune ----------------------------------------------------------------------------------
st.subheader("Prune")
done = st.session_state.pop(DONE, None)
if done:
    rows, note = done
    st.success(f"Pruned {sum(r['documents'] for r in rows):,} documents.")
    if note:
        st.warning(note)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _rows(results: list) -> list[dict]:
    return [
        {
            "layer": r.layer,
            "documents": r.deleted,
            "bytes": max(0, r.bytes_before - r.bytes_after),
            "size": charts.format_value(max(0, r.bytes_before - r.bytes_after), "bytes"),
        }
        for r in results
    ]


with ui.shown_errors("Pruning"):
    if not ui.can("ops:write"):
        st.caption("Pruning needs the ops:write scope.")
        ui.stop_section()
    with st.form("prune"):
        c1, c2 = st.columns([1, 3])
        older_text = c1.text_input("Older than", value="30d", key="prune_older", help="Such as 30d or 12h")
        layers = c2.multiselect("Layers", LAYERS, default=list(LAYERS), key="prune_layers")
        dry = st.form_submit_button("Dry run")
    if dry:
        st.session_state.pop(PLAN, None)
        if not layers:
            raise InvalidInput("Pick at least one layer to prune.")
        older_than = parse_duration(older_text, field="older than")
        ui.authorize("ops:write")
        preview = engine.memory.prune(older_than, layers, dry_run=True)
        st.session_state[PLAN] = (older_text.strip(), tuple(layers), _rows(preview))

    plan = st.session_state.get(PLAN)
    if plan:
        plan_older, plan_layers, plan_rows = plan
        total_docs = sum(r["documents"] for r in plan_rows)
        total_bytes = sum(r["bytes"] for r in plan_rows)
        st.write(
            f"Dry run: **{total_docs:,} documents** ({charts.format_value(total_bytes, 'bytes')}) older than "
            f"**{plan_older}** would go from {', '.join(plan_layers)}."
        )
        st.dataframe(pd.DataFrame(plan_rows), hide_index=True, width="stretch")
        if total_docs == 0:
            st.info("Nothing to prune.")
        elif st.button(f"Prune {total_docs:,} documents", type="primary", key="prune_confirm"):
            actor = ui.authorize("ops:write")
            progress = ui.progress_bar("Pruning…")
            run = engine.prune(
                parse_duration(plan_older, field="older than"),
                list(plan_layers),
                source="workbench",
                actor=actor,
                progress=progress,
            )
            st.session_state.pop(PLAN, None)
            st.session_state[DONE] = (_rows(run.results), run.note)
            st.rerun()
