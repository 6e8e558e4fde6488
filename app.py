"""The Jamey ops workbench: `streamlit run app.py` (or `make run`).

Every page but sign-in needs a key with ``ops:read`` (view), ``ops:write`` (view and operate)
or ``admin`` (everything), as ``workbench_ui/menu.py`` declares once: each page starts with
``workbench_ui.require_page(name)``, which shows the sign-in form until a key is entered, and
says which scope the page needs when the key lacks it. The menu lists only the pages the key may open; a deep link to another still resolves,
to that message. The session signs out after JAMEY_WORKBENCH_IDLE_TIMEOUT without activity, and
each action checks the key and its scope again.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
from pathlib import Path

# `streamlit run` puts the app's directory on sys.path; do the same for other runners
# (AppTest, bench) so the pages can import workbench_ui.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import streamlit as st  # noqa: E402

import workbench_ui as ui  # noqa: E402
from jamey_engine.config import Settings  # noqa: E402
from jamey_engine.errors import JameyError  # noqa: E402
from jamey_engine.privacy import check_data_dir, set_private_umask  # noqa: E402
from workbench_ui import menu  # noqa: E402

set_private_umask()  # before the workbench creates anything
ui.prepare_run()

# --- warm-up: what the first visit to a chart page would otherwise wait for -----------------
# Streamlit loads an element's JavaScript on its first use in a tab: plotly's chunk is ~4.7 MB,
# and evaluating it (with the chart pages' widgets) was most of the Dashboards page's first
# paint (2.0 s against 0.83 s on the second visit). Every tab starts at the sign-in form, so the
# browser imports these there, once the form is drawn and still, while the key is typed. (A
# failed import is left to the page that needs the chunk, which loads it as before.)
BROWSER_WARM_UP = ("PlotlyChart", "ButtonGroup", "Selectbox", "Checkbox", "DownloadButton", "LinkButton")
BROWSER_WARM_UP_QUIET_MS = 250
BROWSER_WARM_UP_JS = """(() => {
  if (window.__jameyWarmUp) return;
  window.__jameyWarmUp = true;
  const index = document.querySelector('script[type=module][src*="/static/js/index."]');
  if (!index) return;
  // once the form's script run has ended and the page has been still for a moment, so the
  // imports never hold up the form's own drawing
  let last = performance.now();
  const observer = new MutationObserver(() => { last = performance.now(); });
  observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  const timer = setInterval(() => {
    if (performance.now() - last < QUIET_MS || document.querySelector('[data-testid=stStatusWidget]')) return;
    clearInterval(timer);
    observer.disconnect();
    for (const name of CHUNKS) import(new URL(name, index.src).href).catch(() => {});
  }, 50);
})();"""
# The element holding the script takes no room on the page.
BROWSER_WARM_UP_STYLE = "<style>[data-testid=stElementContainer]:has(#jamey-warm-up) {display: none}</style>"


def _warm_up_imports() -> None:
    """Import the chart pages' libraries, then freeze what the process holds: Streamlit's full
    collection after every script run (runner.postScriptGC) then skips ~180,000 long-lived
    objects (50-180 ms a run on this loaded 2-core machine)."""
    import pandas  # noqa: F401
    import plotly.graph_objects as go

    import workbench_ui.charts  # noqa: F401

    go.Figure(go.Scatter(x=[0], y=[0])).to_plotly_json()  # loads plotly's validators
    try:
        freeze = Settings.from_env().gc_freeze  # JAMEY_GC_FREEZE, as in the service's workers
    except JameyError:  # a bad setting: the pages say so; the warm-up just does not freeze
        return
    if freeze:
        gc.collect()  # the start-up's garbage is collected now, not frozen with the rest
        gc.freeze()


@st.cache_resource(show_spinner=False)
def _warm_up() -> str:
    """Once per server process: the imports in a background thread (the first page does not
    wait), and the browser's import script, naming Streamlit's hashed chunk files."""
    from streamlit import config

    if not config.get_option("global.appTest"):  # a test process keeps its own collector
        threading.Thread(target=_warm_up_imports, name="warm-up", daemon=True).start()
    static = Path(st.__file__).parent / "static" / "static" / "js"
    chunks = [path.name for name in BROWSER_WARM_UP for path in sorted(static.glob(f"{name}.*.js"))[:1]]
    script = BROWSER_WARM_UP_JS.replace("CHUNKS", json.dumps(chunks)).replace(
        "QUIET_MS", str(BROWSER_WARM_UP_QUIET_MS)
    )
    return f'<span id="jamey-warm-up"></span>{BROWSER_WARM_UP_STYLE}<script>{script}</script>'


warm_up_script = _warm_up()

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
if session is None:  # the sign-in form is drawn: the browser warms up while the key is typed
    st.html(warm_up_script, unsafe_allow_javascript=True)
