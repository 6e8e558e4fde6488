"""Sign-in: an admin-scoped API key opens the workbench."""

from __future__ import annotations

import streamlit as st

import workbench_ui as ui

ui.prepare_run()
if ui.active_session() is not None:
    st.switch_page("pages/overview.py")
ui.sign_in_form(after="pages/overview.py")
