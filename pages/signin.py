"""Sign-in: an admin-scoped API key opens the workbench."""

from __future__ import annotations

import streamlit as st

import workbench_ui as ui
from jamey_engine.errors import JameyError
from jamey_engine.workbench import WorkbenchSession

st.title("Jamey ops workbench")
notice = st.session_state.pop(ui.NOTICE_KEY, None)
if notice:
    st.warning(notice)

st.write(
    "Sign in with an **admin** API key: the first-run key printed by `make run`, or one from "
    "`jamey keys create --name <you> --scope admin`."
)

with st.form("signin"):
    plaintext = st.text_input("API key", type="password", key="signin_key", placeholder="jmy_…")
    submitted = st.form_submit_button("Sign in", type="primary")

if submitted:
    try:
        current = ui.settings()
        session = WorkbenchSession.sign_in(ui.engine().keys, plaintext, current.workbench_idle_timeout)
    except JameyError as err:
        st.error(err.message)
    except Exception:
        ui.log.exception("workbench: sign-in failed")
        st.error("Sign-in failed unexpectedly; the details are in the workbench log.")
    else:
        st.session_state[ui.SESSION_KEY] = session
        st.rerun()
