"""Streamlit plumbing shared by the workbench pages: the cached engine, the session guard,
error display and progress bars. Business rules live in ``jamey_engine``; this module only
connects them to Streamlit.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.errors import Forbidden, JameyError, KeyRejected, RateLimited
from jamey_engine.keys.scopes import SCOPE_DESCRIPTIONS, require_scope
from jamey_engine.observability.promql import PromQuery
from jamey_engine.progress import Progress
from workbench_ui import untrusted
from workbench_ui.menu import PAGE_SCOPES
from workbench_ui.session import ADMIN_SCOPE, SessionExpired, WorkbenchSession

log = logging.getLogger(__name__)

SESSION_KEY = "workbench_session"
NOTICE_KEY = "signin_notice"
PROMETHEUS_TTL_SECONDS = 10


class _Stop(Exception):
    """Raised by stop_section() to end the current section quietly."""


def settings() -> Settings:
    """The settings from the environment; a bad setting stops the page with its message."""
    try:
        return Settings.from_env()
    except JameyError as err:
        st.error(err.message)
        st.stop()
        raise  # unreachable: st.stop raises


def _release_engine(engine: Engine) -> None:
    engine.close()


@st.cache_resource(show_spinner=False, on_release=_release_engine)
def _engine_for(settings_key: str, _settings: Settings) -> Engine:
    return Engine(_settings)


def engine() -> Engine:
    """One Engine per distinct settings, shared by every session of this process."""
    current = settings()
    # The cache key is a digest: the settings hold the key pepper, which no cache should keep.
    return _engine_for(hashlib.sha256(repr(current).encode()).hexdigest(), current)


def _release_prom(query: PromQuery) -> None:
    query.close()


@st.cache_resource(show_spinner=False, on_release=_release_prom)
def _prom_for(url: str, timeout: float) -> PromQuery:
    return PromQuery(url, timeout)


def prom() -> PromQuery:
    """The PromQuery for the configured Prometheus."""
    current = settings()
    return _prom_for(current.prometheus_url, current.prometheus_timeout)


@st.cache_data(ttl=PROMETHEUS_TTL_SECONDS, show_spinner=False, max_entries=256)
def _prom_call(url: str, timeout: float, method: str, args: tuple[Any, ...]) -> Any:
    return getattr(_prom_for(url, timeout), method)(*args)


def prom_query(method: str, *args: Any) -> Any:
    """Call ``PromQuery.<method>(*args)``, cached for PROMETHEUS_TTL_SECONDS.

    Errors (NoData, PrometheusUnreachable, BadQuery) are raised, never cached.
    """
    current = settings()
    return _prom_call(current.prometheus_url, current.prometheus_timeout, method, args)


def prom_frame(method: str, start: datetime, end: datetime) -> pd.DataFrame:
    """A range query of PromQuery by its method name, cached for a short TTL."""
    frame: pd.DataFrame = prom_query(method, start, end)
    return frame


def prom_frames(
    methods: Sequence[str], start: datetime, end: datetime
) -> dict[str, pd.DataFrame | JameyError]:
    """Several range queries at once, one thread each (as a browser loads a dashboard's panels),
    through the same cache as :func:`prom_frame`: each method's frame, or the JameyError it
    raised (NoData, PrometheusUnreachable...). A dashboard's round trips then cost about one."""
    context = get_script_run_ctx()

    def one(method: str) -> pd.DataFrame | JameyError:
        if context is not None:  # st.cache_data needs the script run's context in this thread
            add_script_run_ctx(threading.current_thread(), context)
        try:
            return prom_frame(method, start, end)
        except JameyError as err:
            return err

    if len(methods) <= 1:
        return {method: one(method) for method in methods}
    with ThreadPoolExecutor(max_workers=min(len(methods), 8), thread_name_prefix="prom") as pool:
        return dict(zip(methods, pool.map(one, methods), strict=True))


# --- the session -------------------------------------------------------------------------


def prepare_run() -> None:
    """Settings every script run needs, whichever file Streamlit runs first.

    No traceback reaches a page: ``client.showErrorDetails`` is "none" in .streamlit/config.toml,
    and set here too, since Streamlit reads that file from the working directory only.

    And app.py's ``st.navigation`` governs every run:

    Streamlit runs the very first script run of a server process in its legacy "pages/
    directory" mode (because ``pages/`` exists): it shows a raw menu of every file in pages/
    and may run a page file without app.py. ``st.navigation`` switches that mode off for later
    runs; this reruns at once so the first visitor never sees the legacy menu. (AppTest
    resets the mode before every run, so there it is left alone: the page guards hold.)
    """
    from streamlit import config
    from streamlit.runtime.pages_manager import PagesManager

    st.set_option("client.showErrorDetails", "none")
    if PagesManager.uses_pages_directory and not config.get_option("global.appTest"):
        PagesManager.uses_pages_directory = False
        st.rerun()


def current_session() -> WorkbenchSession | None:
    """The signed-in session of this browser tab, if any."""
    value = st.session_state.get(SESSION_KEY)
    return value if isinstance(value, WorkbenchSession) else None


def active_session() -> WorkbenchSession | None:
    """The session if it is signed in, not idle too long, and its key still valid and able to sign in (ops:read);
    this run counts as activity. Otherwise the session is signed out (with the reason as a
    notice for the sign-in form) and None is returned.

    Raises Busy/Unavailable when the key database cannot be read: no page opens unverified.
    """
    session = current_session()
    if session is None:
        return None
    try:
        session.authorize(engine().keys)
    except (KeyRejected, Forbidden) as err:
        sign_out(err.message if isinstance(err, SessionExpired) else f"Signed out: {err.message}")
        return None
    return session


def require_session(needs: str | None = None) -> WorkbenchSession:
    """Every page but sign-in starts with this: without a live session it shows the sign-in
    form in place of the page and stops, so no page is reachable without an ops:read key (or one above it), however
    it was requested. The key is checked again on every page run, so a revoked key stops at
    the next click."""
    prepare_run()
    try:
        session = active_session()
    except JameyError as err:
        st.error(f"Cannot check your API key: {err.message}")
        st.stop()
        raise  # unreachable: st.stop raises
    if session is None:
        sign_in_form()
        st.stop()
    assert session is not None
    if needs is not None and not session.can(needs):
        st.error(
            f"This page needs the **{needs}** scope ({SCOPE_DESCRIPTIONS.get(needs, needs)}); "
            f"your key has {', '.join(session.scopes) or 'no scope'}."
        )
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{untrusted.text(session.actor)}**")
        if st.button("Sign out", key="sign_out", icon=":material/logout:"):
            sign_out("Signed out.")
            st.rerun()
    return session


def require_page(name: str) -> WorkbenchSession:
    """:func:`require_session` with the scope ``workbench_ui.menu`` declares for page ``name``
    (the file name in ``pages/`` without ``.py``)."""
    return require_session(PAGE_SCOPES[name])


def can(scope: str) -> bool:
    """Whether the signed-in key held ``scope`` at its last check: pages hide what the engine
    would refuse (every action still checks again through :func:`authorize`)."""
    session = current_session()
    return session is not None and session.can(scope)


def still_signed_in() -> None:
    """For fragments that rerun on their own (auto-refresh): when the session went idle or its
    key stopped working, rerun the whole page, whose guard then shows the sign-in form. Does
    not count as activity."""
    session = current_session()
    try:
        if session is not None:
            session.check(engine().keys)
            return
    except (KeyRejected, Forbidden):
        pass
    st.rerun(scope="app")


def sign_in_form(after: str | None = None) -> None:
    """The sign-in form. On success the page reruns (so a deep link lands where it pointed),
    or switches to ``after`` (a page path such as ``pages/overview.py``)."""
    st.title("Jamey ops workbench")
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.warning(notice)
    st.write(
        "Sign in with an API key holding **ops:read** (view), **ops:write** (view and operate) or "
        "**admin** (everything): the first-run admin key printed by `make run`, or one from "
        "`jamey keys create --name <you> --scope ops:read`."
    )
    with st.form("signin"):
        plaintext = st.text_input("API key", type="password", key="signin_key", placeholder="jmy_…")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    try:
        session = WorkbenchSession.sign_in(engine().keys, plaintext, settings().workbench_idle_timeout)
    except JameyError as err:
        st.error(err.message)
        return
    except Exception:
        log.exception("workbench: sign-in failed")
        st.error("Sign-in failed unexpectedly; the details are in the workbench log.")
        return
    st.session_state[SESSION_KEY] = session
    if after:
        st.switch_page(after)
    st.rerun()


def sign_out(notice: str | None = None) -> None:
    """Forget the session (and its key); ``notice`` is shown on the sign-in page."""
    st.session_state.pop(SESSION_KEY, None)
    if notice:
        st.session_state[NOTICE_KEY] = notice


def authorize(needs: str = ADMIN_SCOPE) -> str:
    """Check the session and its key again before an action that needs the ``needs`` scope;
    return the actor name.

    A key revoked, expired or stripped of the sign-in scope since sign-in (or an idle session)
    signs the session out and reruns to the sign-in page with the reason. A key that is valid
    but lacks ``needs`` raises Forbidden (shown by :func:`shown_errors` as a one-line error).
    Every action is charged to the key's rate limit (:func:`charge`): RateLimited when used up.
    """
    session = current_session()
    if session is None:
        sign_out("Sign in with an API key.")
        st.rerun()
    assert session is not None
    try:
        actor = session.authorize(engine().keys)
    except (KeyRejected, Forbidden) as err:
        sign_out(f"Signed out: {err.message}")
        st.rerun()
        raise  # unreachable: st.rerun raises
    charge(session)
    require_scope(actor, session.scopes, needs)
    return actor


def charge(session: WorkbenchSession) -> None:
    """Count one action of the session's key against its rate limit and the global one, with
    the very limiter (and counters) the API charges. Raises RateLimited, saying nothing was
    done and when to try again, when either limit is used up."""
    limit = session.rate_limit or settings().default_rate_limit
    decision = engine().limiter.hit(session.key_id, limit)
    if not decision.allowed:
        which = "this key's" if (decision.scope or "key") == "key" else "the service's global"
        raise RateLimited(
            f"Over {which} rate limit ({decision.limit} requests, shared with the API); nothing was "
            f"done. Try again in {decision.retry_after}s.",
            retry_after=decision.retry_after,
            scope=decision.scope or "key",
        )


@contextmanager
def shown_errors(what: str) -> Iterator[None]:
    """Run a section of a page; a JameyError shows as ``st.error`` and the rest of the page
    goes on. Any other exception is logged and shown as a one-line message, never a traceback."""
    try:
        yield
    except _Stop:
        pass
    except JameyError as err:
        st.error(err.message)
    except Exception:
        log.exception("workbench: %s failed", what)
        st.error(f"{what} failed unexpectedly; the details are in the workbench log.")


def stop_section() -> None:
    """End the enclosing ``shown_errors`` section without an error of its own."""
    raise _Stop()


def progress_bar(text: str) -> Progress:
    """An ``st.progress`` bar driven by the engine's ``progress(done, total, stage)`` callback."""
    bar = st.progress(0.0, text=text)

    def update(done: int, total: int, stage: str) -> None:
        fraction = 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
        bar.progress(fraction, text=f"{stage} ({done}/{total})" if total > 0 else stage)

    return update


def age(moment: datetime | None, now: datetime) -> str:
    """``3h ago`` style age of a timestamp (``never`` for None)."""
    from jamey_engine.durations import format_duration

    if moment is None:
        return "never"
    delta = now - moment
    if delta.total_seconds() < 1:
        return "just now"
    return f"{format_duration(delta)} ago"
