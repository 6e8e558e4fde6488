"""The workbench as an ASGI app with its security headers (CSP, frame protection): what
`jamey stack` and `make run` serve, so the workbench sends the same headers with or without nginx
in front. `streamlit run workbench_asgi.py` finds ``app`` and serves app.py through it."""

import streamlit as st
from starlette.middleware import Middleware

from workbench_ui.headers import SecurityHeaders

app = st.App("app.py", middleware=[Middleware(SecurityHeaders)])
