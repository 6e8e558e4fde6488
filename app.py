"""The Jamey ops workbench: `streamlit run app.py` (or `make run`).

Every page but sign-in needs an admin-scoped API key: each page starts with
``workbench_ui.require_session()``, which shows the sign-in form instead of the page until
an admin key is entered. The session signs out after JAMEY_WORKBENCH_IDLE_TIMEOUT without
activity, and each admin action checks the key again.
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
from jamey_engine.errors import JameyError  # noqa: E402

ui.prepare_run()
# A local favicon: a ":material/..." icon would be fetched from fonts.gstatic.com, which the
# workbench's CSP blocks (it must work on a closed network).
st.set_page_config(
    page_title="Jamey ops workbench", page_icon=str(_HERE / "assets" / "favicon.png"), layout="wide"
)


def _page(name: str, title: str, icon: str, *, default: bool = False) -> st.Page:
    return st.Page(
        str(_HERE / "pages" / f"{name}.py"), title=title, icon=icon, url_path=name, default=default
    )


try:
    session = ui.active_session()
except JameyError:  # the page's own guard says what failed; the menu simply stays hidden
    session = None
signin = _page("signin", "Sign in", ":material/login:", default=session is None)
sections = {
    "Operations": [
        _page("overview", "Overview", ":material/monitor_heart:", default=session is not None),
        _page("dashboards", "Dashboards", ":material/monitoring:"),
        _page("alerts", "Alerts", ":material/notifications_active:"),
    ],
    "Administration": [
        _page("keys", "API keys", ":material/key:"),
        _page("memory", "Memory", ":material/database:"),
        _page("backups", "Backups", ":material/backup:"),
    ],
}
if session is None:
    # Signed out: no menu. A deep link still resolves to its page, whose guard shows the
    # sign-in form and, once signed in, the page itself.
    navigation = st.navigation(
        [signin, *sections["Operations"], *sections["Administration"]], position="hidden"
    )
else:
    navigation = st.navigation(sections)

navigation.run()
