"""The Jamey ops workbench: `streamlit run app.py` (or `make run`).

Every page but sign-in needs an admin-scoped API key. The session signs out after
JAMEY_WORKBENCH_IDLE_TIMEOUT without activity, and each admin action checks the key again.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts the app's directory on sys.path; do the same for other runners
# (AppTest, bench) so the pages can import workbench_ui.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import streamlit as st  # noqa: E402

import workbench_ui as ui  # noqa: E402
from jamey_engine.workbench import SessionExpired  # noqa: E402

st.set_page_config(page_title="Jamey ops workbench", page_icon=":material/memory:", layout="wide")


def _page(name: str, title: str, icon: str, *, default: bool = False) -> st.Page:
    return st.Page(
        str(_HERE / "pages" / f"{name}.py"), title=title, icon=icon, url_path=name, default=default
    )


session = ui.current_session()
if session is not None:
    try:
        session.touch()
    except SessionExpired as err:
        ui.sign_out(err.message)
        session = None

if session is None:
    navigation = st.navigation(
        [_page("signin", "Sign in", ":material/login:", default=True)], position="hidden"
    )
else:
    navigation = st.navigation(
        {
            "Operations": [
                _page("overview", "Overview", ":material/monitor_heart:", default=True),
                _page("dashboards", "Dashboards", ":material/monitoring:"),
                _page("alerts", "Alerts", ":material/notifications_active:"),
            ],
            "Administration": [
                _page("keys", "API keys", ":material/key:"),
                _page("memory", "Memory", ":material/database:"),
                _page("backups", "Backups", ":material/backup:"),
            ],
        }
    )
    with st.sidebar:
        st.caption(f"Signed in as **{session.actor}**")
        if st.button("Sign out", key="sign_out", icon=":material/logout:"):
            ui.sign_out("Signed out.")
            st.rerun()

navigation.run()
