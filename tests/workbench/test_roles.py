"""Least privilege in the workbench: ops:read views, ops:write also operates, admin does everything.

For each role: the menu, every page, and the actions each page offers, as the engine's one
scope rule (jamey_engine/keys/scopes.py) decides; a deep link beyond the key's scope names the
scope it needs, with no traceback and no empty page.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from jamey_engine.engine import Engine
from jamey_engine.errors import Forbidden
from workbench_ui.session import WorkbenchSession

from .conftest import APP, TIMEOUT, open_page, sign_in, texts

PAGES = ("overview", "dashboards", "alerts", "runbooks", "memory", "backups", "keys")
VIEWS = {"Overview", "Dashboards", "Alerts", "Runbooks", "Memory", "Backups"}
MENU = {"ops:read": VIEWS, "ops:write": {*VIEWS, "Approvals"}, "admin": {*VIEWS, "Approvals", "API keys"}}
TITLES = {
    "overview": "Overview",
    "dashboards": "Dashboards",
    "alerts": "Alerts",
    "runbooks": "Runbooks",
    "memory": "Memory",
    "backups": "Backups",
    "keys": "API keys",
}


def signed_in(engine: Engine, scope: str) -> AppTest:
    """The workbench signed in through its form with a new key holding only ``scope``."""
    key = engine.keys.create(f"{scope.replace(':', '-')}-person", scopes=(scope,), actor="test").key
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    sign_in(at, key)
    assert not at.exception, at.exception
    return at


def opened_with_session(engine: Engine, scope: str) -> AppTest:
    """app.py run once with a session already signed in (AppTest runs app.py, which draws the
    menu, only on its first run; later runs execute the page alone)."""
    key = engine.keys.create(f"{scope.replace(':', '-')}-person", scopes=(scope,), actor="test").key
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["workbench_session"] = WorkbenchSession.sign_in(engine.keys, key, timedelta(minutes=30))
    at.run()
    assert not at.exception, at.exception
    return at


def menu(at: AppTest) -> set[str]:
    return {link.proto.label for link in at.sidebar.get("page_link")}


@pytest.mark.parametrize("scope", ["ops:read", "ops:write", "admin"])
def test_the_menu_lists_only_the_pages_the_key_may_open(engine: Engine, wb_env: object, scope: str) -> None:
    at = opened_with_session(engine, scope)
    assert [t.value for t in at.title] == ["Overview"]
    assert menu(at) == MENU[scope]


@pytest.mark.parametrize("scope", ["ops:read", "ops:write"])
def test_a_deep_link_to_the_keys_page_names_the_scope_it_needs(
    engine: Engine, wb_env: object, scope: str
) -> None:
    at = signed_in(engine, scope)
    open_page(at, "keys")
    assert not at.exception, at.exception
    assert "This page needs the **admin** scope" in texts(at)
    assert not at.dataframe
    assert [t.value for t in at.title] == []  # the page stopped before drawing anything


@pytest.mark.parametrize("scope", ["ops:read", "ops:write", "admin"])
@pytest.mark.parametrize("page", [p for p in PAGES if p != "keys"])
def test_every_viewing_page_opens_for_every_workbench_role(
    engine: Engine, wb_env: object, scope: str, page: str
) -> None:
    at = signed_in(engine, scope)
    open_page(at, page)
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == [TITLES[page]]


def _buttons(at: AppTest) -> set[str]:
    return {button.key for button in at.button if button.key}


@pytest.mark.parametrize(
    ("scope", "create", "verify", "restore", "delete"),
    [
        ("ops:read", False, False, False, False),
        ("ops:write", True, True, False, False),
        ("admin", True, True, True, True),
    ],
)
def test_the_backups_page_offers_each_role_only_its_actions(
    engine: Engine, wb_env: object, scope: str, create: bool, verify: bool, restore: bool, delete: bool
) -> None:
    engine.vault.create(actor="test")
    at = signed_in(engine, scope)
    open_page(at, "backups")
    keys = _buttons(at)
    assert ("backup_create" in keys) is create
    assert ("backup_verify" in keys) is verify
    assert ("backup_plan" in keys) is restore
    assert ("backup_delete" in keys) is delete
    assert ("Changing backup retention needs the admin scope." in texts(at)) is (not restore)


@pytest.mark.parametrize(("scope", "allowed"), [("ops:read", False), ("ops:write", True), ("admin", True)])
def test_only_operators_may_prune_from_the_memory_page(
    engine: Engine, wb_env: object, scope: str, allowed: bool
) -> None:
    at = signed_in(engine, scope)
    open_page(at, "memory")
    assert ("FormSubmitter:prune-Plan the prune" in _buttons(at)) is allowed
    assert ("Pruning needs the ops:write scope." in texts(at)) is (not allowed)


def test_an_operator_whose_key_is_narrowed_is_refused_at_the_next_action(
    engine: Engine, wb_env: object
) -> None:
    import sqlalchemy as sa

    at = signed_in(engine, "ops:write")
    open_page(at, "backups")
    assert "backup_create" in _buttons(at)
    with engine.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE api_keys SET scopes = 'ops:read'"))
    at.button(key="backup_create").click().run()
    assert not at.exception, at.exception
    assert engine.vault.list() == []  # the key was checked again on the click: nothing ran
    assert "backup_create" not in _buttons(at)
    session = at.session_state["workbench_session"]
    with pytest.raises(Forbidden, match="ops:write"):
        session.authorize(engine.keys, needs="ops:write")
