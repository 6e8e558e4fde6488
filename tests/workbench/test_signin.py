"""The sign-in gate: only a key with ops:read (or above) opens the workbench, for as long as it stays valid."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine

from .conftest import APP, open_page, sign_in, texts


def test_without_a_key_only_the_sign_in_page_exists(app: AppTest) -> None:
    assert not app.exception
    assert [t.value for t in app.title] == ["Jamey ops workbench"]
    assert app.text_input(key="signin_key")
    assert "Signed in as" not in texts(app)


def test_an_empty_key_is_refused_inline(app: AppTest) -> None:
    sign_in(app, "   ")
    assert [e.value for e in app.error] == ["Enter an API key to sign in."]
    assert app.session_state.get("workbench_session") is None


def test_garbage_is_refused_without_a_traceback(app: AppTest) -> None:
    sign_in(app, "not-a-key")
    assert not app.exception
    assert len(app.error) == 1 and "rejected" in app.error[0].value.lower()


def test_it_refuses_a_reader_key(app: AppTest, reader_key: str) -> None:
    sign_in(app, reader_key)
    assert not app.exception
    assert "reader-bot" in app.error[0].value and "ops:read" in app.error[0].value
    assert [t.value for t in app.title] == ["Jamey ops workbench"]


def test_it_refuses_a_revoked_admin_key(app: AppTest, admin_key: str, engine: Engine) -> None:
    engine.keys.revoke(engine.keys.verify(admin_key).id, actor="test")
    sign_in(app, admin_key)
    assert "revoked" in app.error[0].value


def test_an_admin_key_opens_the_overview(app: AppTest, admin_key: str) -> None:
    sign_in(app, admin_key)
    assert not app.exception, app.exception
    assert [t.value for t in app.title] == ["Overview"]
    assert app.session_state["workbench_session"].actor == "ops-admin"


def test_signing_out_returns_to_sign_in(admin_app: AppTest) -> None:
    admin_app.button(key="sign_out").click().run()
    assert [t.value for t in admin_app.title] == ["Jamey ops workbench"]
    assert "Signed out." in texts(admin_app)


def test_a_key_revoked_mid_session_is_stopped_at_the_next_action(
    admin_app: AppTest, admin_key: str, engine: Engine
) -> None:
    open_page(admin_app, "keys")
    engine.keys.revoke(engine.keys.verify(admin_key).id, actor="other-admin")
    admin_app.text_input(key="create_name").input("should-not-exist")
    admin_app.button(key="FormSubmitter:create_key-Create key").click().run()
    assert not admin_app.exception, admin_app.exception
    assert [t.value for t in admin_app.title] == ["Jamey ops workbench"]
    assert "revoked" in texts(admin_app)
    assert "should-not-exist" not in [k.name for k in engine.keys.list()]


def test_an_idle_session_expires(admin_app: AppTest, wb_env: Path) -> None:
    with time_machine.travel(utcnow() + timedelta(minutes=31), tick=False):
        open_page(admin_app, "keys")
    assert [t.value for t in admin_app.title] == ["Jamey ops workbench"]
    assert "without activity" in texts(admin_app)


def test_activity_keeps_the_session_alive(admin_app: AppTest) -> None:
    start = utcnow()
    for minutes in (20, 40, 60):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            open_page(admin_app, "overview")
            assert [t.value for t in admin_app.title] == ["Overview"]


@pytest.mark.parametrize("page", ["overview", "dashboards", "alerts", "keys", "memory", "backups"])
def test_a_deep_link_without_a_session_shows_only_the_sign_in_form(wb_env: Path, page: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Jamey ops workbench"]
    assert len(at.text_input) == 1 and at.text_input[0].key == "signin_key"
    assert not at.dataframe and not at.get("plotly_chart")


def test_after_signing_in_from_a_deep_link_the_page_itself_shows(wb_env: Path, admin_key: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/backups.py").run()
    sign_in(at, admin_key)
    assert [t.value for t in at.title] == ["Backups"]


def test_a_key_revoked_mid_session_is_stopped_at_the_next_page_view(
    admin_app: AppTest, admin_key: str, engine: Engine
) -> None:
    engine.keys.revoke(engine.keys.verify(admin_key).id, actor="other-admin")
    open_page(admin_app, "dashboards")
    assert [t.value for t in admin_app.title] == ["Jamey ops workbench"]
    assert "Signed out: API key rejected: revoked" in texts(admin_app)
    assert admin_app.session_state.get("workbench_session") is None


def test_a_key_stripped_of_its_workbench_scopes_is_refused_too(admin_app: AppTest, wb_env: Path) -> None:
    import sqlalchemy as sa

    with sa.create_engine(f"sqlite:///{wb_env / 'jamey.db'}").begin() as conn:
        tables = sa.inspect(conn).get_table_names()
        assert "api_keys" in tables, tables
        conn.execute(sa.text("UPDATE api_keys SET scopes = 'memory:read'"))
    open_page(admin_app, "overview")
    assert [t.value for t in admin_app.title] == ["Jamey ops workbench"]
    assert "needs the ops:read scope" in texts(admin_app)
