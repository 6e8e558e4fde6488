"""The Jamey ops workbench: `streamlit run app.py` (or `make run`).

Every page but sign-in needs a key with ``ops:read`` (view), ``ops:write`` (view and operate)
or ``admin`` (everything), as ``workbench_ui/menu.py`` declares once: each page starts with
``workbench_ui.require_page(name)``, which shows the sign-in form until a key is entered, and
says which scope the page needs when the key lacks it. The menu lists only the pages the key may open; a deep link to another still resolves,
to that message. The session signs out after JAMEY_WORKBENCH_IDLE_TIMEOUT without activity, and
each action checks the key and its scope again.
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
from jamey_engine.privacy import check_data_dir, set_private_umask  # noqa: E402
from workbench_ui import menu  # noqa: E402

set_private_umask()  # before the workbench creates anything
ui.prepare_run()
# A local favicon: a ":material/..." icon would be fetched from fonts.gstatic.com, which the
# workbench's CSP blocks (it must work on a closed network).
st.set_page_config(
    page_title="Jamey ops workbench", page_icon=str(_HERE / "assets" / "favicon.png"), layout="wide"
)

try:  # a group- or world-accessible data dir is refused, as by every front door
    check_data_dir(ui.settings())
except JameyError as err:
    st.error(err.message, icon=":material/lock:")
    st.stop()


def _page(name: str, title: str, icon: str, *, default: bool = False) -> st.Page:
    return st.Page(
        str(_HERE / "pages" / f"{name}.py"), title=title, icon=icon, url_path=name, default=default
    )


try:
    session = ui.active_session()
except JameyError:  # the page's own guard says what failed; the menu simply stays hidden
    session = None
signin = _page("signin", "Sign in", ":material/login:", default=session is None)
# (page, the scope it needs) by menu section, as workbench_ui.menu declares them; the pages ask
# for the same scope themselves (ui.require_page).
sections: dict[str, list[tuple[st.Page, str]]] = {
    title: [
        (_page(p.name, p.title, p.icon, default=session is not None and p.name == menu.HOME), p.needs)
        for p in entries
    ]
    for title, entries in menu.SECTIONS.items()
}
every_page = [signin, *(page for pages in sections.values() for page, _ in pages)]
# Every page is registered (so any deep link resolves to its page, whose guard explains), and
# the menu is drawn by hand with only the pages this key may open.
navigation = st.navigation(every_page, position="hidden")
if session is not None:
    with st.sidebar:
        for title, pages in sections.items():
            allowed = [page for page, needs in pages if session.can(needs)]
            if allowed:
                st.caption(title)
                for page in allowed:
                    st.page_link(page)

navigation.run()
