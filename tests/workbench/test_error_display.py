"""No traceback reaches a page: sections show errors inline and the page goes on."""

from __future__ import annotations

import tomllib

from streamlit.testing.v1 import AppTest

from .conftest import REPO

PAGE = """
import sys
sys.path.insert(0, {repo!r})
import streamlit as st
import workbench_ui as ui
from jamey_engine.errors import Busy

with ui.shown_errors("Reading the index"):
    raise Busy("layer 'working' is being written by another process; try again")
with ui.shown_errors("Drawing the chart"):
    raise ZeroDivisionError("secret internals")
with ui.shown_errors("A section that stops early"):
    ui.stop_section()
    st.write("never shown")
st.write("the rest of the page")
"""


def test_errors_show_inline_without_traceback_and_the_page_goes_on() -> None:
    at = AppTest.from_string(PAGE.format(repo=str(REPO)), default_timeout=30).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "layer 'working' is being written by another process; try again",
        "Drawing the chart failed unexpectedly; the details are in the workbench log.",
    ]
    assert "secret internals" not in str(at.main)
    assert [m.value for m in at.markdown] == ["the rest of the page"]


def test_the_config_hides_error_details_and_binds_to_loopback() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False
