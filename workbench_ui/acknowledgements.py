"""Alert acknowledgements on the Alerts page: who is on an alert (shown on the alert), the
Acknowledge button (``ops:write``) and the acknowledgements in the history.

The rules (which instance, when it ends) are in ``jamey_engine.observability.alert_acks``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.observability.alert_acks import Acknowledgement, acknowledge, acknowledgements

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.observability.alert_state import AlertView


def _acknowledge(fingerprint: str) -> None:
    actor = ui.authorize("ops:write")
    comment = str(st.session_state.get(f"ack_comment_{fingerprint}", ""))
    acknowledge(ui.engine().db, fingerprint, comment, actor=actor)
    st.session_state["alerts_notice"] = f"Acknowledged alert {fingerprint}."


def show_acknowledgement(view: AlertView, ack: Acknowledgement | None, can_write: bool) -> None:
    """On one alert: its acknowledgement (who, when, comment), or the Acknowledge form."""
    if ack is not None:
        st.markdown(
            f":green-badge[acknowledged] by **{ack.actor}** at {ack.at:%Y-%m-%d %H:%M:%S} UTC: {ack.comment}"
        )
        return
    if not (can_write and view.fingerprint and view.state == "firing"):
        return
    with st.popover("Acknowledge…", icon=":material/front_hand:"):
        st.text_input(
            "Comment (required)", key=f"ack_comment_{view.fingerprint}", placeholder="I'm on it: what you do"
        )
        if st.button("Acknowledge", key=f"ack_{view.fingerprint}", type="primary"):
            with ui.shown_errors("Acknowledging the alert"):
                _acknowledge(view.fingerprint)
                st.rerun()


def show_acknowledgement_history(db: Database, since: datetime) -> None:
    """The acknowledgements made since ``since``: who, when, comment, and when each ended."""
    found = acknowledgements(db, since)
    if not found:
        return
    st.markdown("**Acknowledgements**")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "alert": a.alertname,
                    "fingerprint": a.fingerprint,
                    "by": a.actor,
                    "at": a.at,
                    "comment": a.comment,
                    "ended (resolved)": a.ended_at,
                }
                for a in found
            ]
        ),
        hide_index=True,
        key="history_acks",
    )
