"""The API keys page: create (shown once), the table and its filters, rotate and revoke behind
confirmations, the audit trail; every change lands in the real database, audited with the
signed-in key's name."""

from __future__ import annotations

import time_machine
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.plans.store import list_plans

from .conftest import apply_plan, open_page, texts

CREATE = "FormSubmitter:create_key-Create key"


def fill_create(
    at: AppTest, name: str, scopes: list[str] | None = None, limit: str = "", expiry: str = ""
) -> AppTest:
    at.text_input(key="create_name").input(name)
    if scopes is not None:
        at.multiselect(key="create_scopes").set_value(scopes)
    at.text_input(key="create_limit").input(limit)
    at.text_input(key="create_expiry").input(expiry)
    at.button(key=CREATE).click()
    return at.run()


def names(engine: Engine) -> list[str]:
    return [k.name for k in engine.keys.list()]


def test_the_page_lists_keys_and_the_audit_trail(admin_app: AppTest) -> None:
    open_page(admin_app, "keys")
    assert not admin_app.exception, admin_app.exception
    assert [t.value for t in admin_app.title] == ["API keys"]
    table = admin_app.dataframe[0].value
    assert list(table["name"]) == ["ops-admin"]
    assert list(table["status"]) == ["active"]
    audit = admin_app.dataframe[-1].value
    assert "create" in " ".join(map(str, audit["event"])).lower()


def test_creating_a_key_stores_it_and_shows_it_once(admin_app: AppTest, engine: Engine) -> None:
    open_page(admin_app, "keys")
    fill_create(admin_app, "ingest-bot", ["memory:read", "memory:write"], "10/second", "30d")
    assert not admin_app.exception, admin_app.exception
    assert not admin_app.error, [e.value for e in admin_app.error]
    created = next(k for k in engine.keys.list() if k.name == "ingest-bot")
    assert created.scopes == ("memory:read", "memory:write")
    assert created.rate_limit == "10/second"
    assert created.expires_at is not None
    shown = [c.value for c in admin_app.code]
    assert len(shown) == 1
    assert engine.keys.verify(shown[0]).name == "ingest-bot"
    assert "ingest-bot" in list(admin_app.dataframe[0].value["name"])
    audit = engine.keys.audit()
    assert any(e["key_name"] == "ingest-bot" and e["actor"] == "ops-admin" for e in audit), audit
    admin_app.run()
    assert not admin_app.code, "the plaintext is shown only once"


def test_an_empty_name_is_an_inline_error_and_nothing_is_created(admin_app: AppTest, engine: Engine) -> None:
    open_page(admin_app, "keys")
    before = engine.keys.count()
    fill_create(admin_app, "  ")
    assert [e.value for e in admin_app.error] == ["Name must not be empty."]
    assert engine.keys.count() == before


def test_a_bad_rate_limit_is_an_inline_error_and_nothing_is_created(
    admin_app: AppTest, engine: Engine
) -> None:
    open_page(admin_app, "keys")
    fill_create(admin_app, "bot", limit="lots")
    assert not admin_app.exception
    assert len(admin_app.error) == 1 and "lots" in admin_app.error[0].value
    assert "bot" not in names(engine)


def test_a_bad_expiry_is_an_inline_error_and_nothing_is_created(admin_app: AppTest, engine: Engine) -> None:
    open_page(admin_app, "keys")
    fill_create(admin_app, "bot", expiry="next week")
    assert "expiry 'next week' is not a duration" in admin_app.error[0].value
    assert "bot" not in names(engine)


def test_no_scope_is_an_inline_error(admin_app: AppTest, engine: Engine) -> None:
    open_page(admin_app, "keys")
    fill_create(admin_app, "bot", scopes=[])
    assert [e.value for e in admin_app.error] == ["Pick at least one scope."]
    assert "bot" not in names(engine)


def test_a_duplicate_name_is_refused_inline(admin_app: AppTest, engine: Engine) -> None:
    open_page(admin_app, "keys")
    fill_create(admin_app, "ops-admin")
    assert not admin_app.exception
    assert len(admin_app.error) == 1 and "ops-admin" in admin_app.error[0].value
    assert names(engine).count("ops-admin") == 1


def test_filters_narrow_the_table(admin_app: AppTest, engine: Engine) -> None:
    engine.keys.create("reader-one", scopes=("memory:read",), actor="test")
    gone = engine.keys.create("old-bot", scopes=("memory:write",), actor="test")
    engine.keys.revoke(gone.id, actor="test")
    open_page(admin_app, "keys")
    assert len(admin_app.dataframe[0].value) == 3
    admin_app.multiselect(key="filter_status").set_value(["revoked"]).run()
    assert list(admin_app.dataframe[0].value["name"]) == ["old-bot"]
    admin_app.multiselect(key="filter_status").set_value([]).run()
    admin_app.multiselect(key="filter_scope").set_value(["admin"]).run()
    assert list(admin_app.dataframe[0].value["name"]) == ["ops-admin"]
    admin_app.multiselect(key="filter_scope").set_value([]).run()
    admin_app.text_input(key="filter_text").input("READER").run()
    assert list(admin_app.dataframe[0].value["name"]) == ["reader-one"]
    admin_app.text_input(key="filter_text").input("nobody").run()
    assert "No key matches the filters." in texts(admin_app)


def choose(at: AppTest, name: str) -> None:
    box = at.selectbox(key="action_key")
    at.selectbox(key="action_key").set_value(next(o for o in box.options if o.startswith(name + " (")))


def test_revoking_is_planned_first_then_revokes_in_the_database(admin_app: AppTest, engine: Engine) -> None:
    victim = engine.keys.create("victim", actor="test")
    open_page(admin_app, "keys")
    choose(admin_app, "victim")
    admin_app.button(key="revoke").click().run()
    assert not admin_app.exception, admin_app.exception
    (plan,) = list_plans(engine.db)
    assert plan.action == "key-revoke" and f"**Plan {plan.id}**" in texts(admin_app)
    keys_table = next(
        df.value for df in admin_app.dataframe if "name" in df.value.columns and "scopes" in df.value.columns
    )
    assert "victim" in list(keys_table["name"])
    assert engine.keys.show(victim.id).status == "active", "nothing happens before applying"
    apply_plan(admin_app, "keys_revoke", plan.confirm_phrase)
    assert not admin_app.exception, admin_app.exception
    assert engine.keys.show(victim.id).status == "revoked"
    assert any(e["event"] == "revoked" and e["actor"] == "ops-admin" for e in engine.keys.audit())


def test_discarding_a_revocation_plan_changes_nothing(admin_app: AppTest, engine: Engine) -> None:
    victim = engine.keys.create("victim", actor="test")
    open_page(admin_app, "keys")
    choose(admin_app, "victim")
    admin_app.button(key="revoke").click().run()
    admin_app.button(key="FormSubmitter:plan_apply_keys_revoke-Discard the plan").click().run()
    assert not admin_app.exception, admin_app.exception
    assert engine.keys.show(victim.id).status == "active"
    assert "Revocation plan" not in texts(admin_app)


def test_rotating_with_grace_issues_a_new_key_shown_once(admin_app: AppTest, engine: Engine) -> None:
    old = engine.keys.create("rotating-bot", actor="test")
    open_page(admin_app, "keys")
    choose(admin_app, "rotating-bot")
    admin_app.text_input(key="action_grace").input("2h")
    admin_app.button(key="rotate").click().run()
    assert not admin_app.exception, admin_app.exception
    (plan,) = list_plans(engine.db)
    assert plan.action == "key-rotate" and plan.parameters["grace"] == "2h"
    apply_plan(admin_app, "keys_rotate", plan.confirm_phrase)
    assert not admin_app.exception, admin_app.exception
    assert engine.keys.show(old.id).status == "rotating"
    new_plaintext = admin_app.code[0].value
    assert engine.keys.verify(new_plaintext).id != old.id
    kept = admin_app.session_state["plan_result_keys_rotate"]
    assert "key" not in kept and new_plaintext not in str(kept), "the new key is never kept in the session"
    assert any(e["event"] == "rotated" and e["actor"] == "ops-admin" for e in engine.keys.audit())
    assert engine.keys.verify(old.key).id == old.id, "the old key works during the grace period"


def test_a_bad_grace_period_is_an_inline_error_and_nothing_rotates(
    admin_app: AppTest, engine: Engine
) -> None:
    old = engine.keys.create("rotating-bot", actor="test")
    open_page(admin_app, "keys")
    choose(admin_app, "rotating-bot")
    admin_app.text_input(key="action_grace").input("soon")
    admin_app.button(key="rotate").click().run()
    assert any("grace 'soon' is not a duration" in e.value for e in admin_app.error)
    assert engine.keys.show(old.id).status == "active"
    assert list_plans(engine.db) == []


def test_revoking_your_own_key_warns_first(admin_app: AppTest, engine: Engine) -> None:
    open_page(admin_app, "keys")
    choose(admin_app, "ops-admin")
    assert any("the key you are signed in with" in w.value for w in admin_app.warning)
    admin_app.button(key="revoke").click().run()
    (plan,) = list_plans(engine.db)
    apply_plan(admin_app, "keys_revoke", plan.confirm_phrase)
    assert not admin_app.exception, admin_app.exception
    assert [t.value for t in admin_app.title] == ["Jamey ops workbench"], "signed out at once"


def test_stale_keys_are_flagged_filtered_and_revoked_in_bulk_through_one_plan(
    admin_app: AppTest, engine: Engine
) -> None:
    from datetime import timedelta

    import sqlalchemy as sa

    from jamey_engine.models import ApiKey

    idle = [engine.keys.create(f"idle-{n}", actor="test") for n in range(2)]
    with engine.db.session() as session:  # created 100 days ago, never used
        session.execute(
            sa.update(ApiKey)
            .where(ApiKey.id.in_([k.id for k in idle]))
            .values(created_at=engine.keys.show(idle[0].id).created_at - timedelta(days=100))
        )
    open_page(admin_app, "keys")
    assert not admin_app.exception, admin_app.exception
    assert "Stale keys (2)" in texts(admin_app)
    admin_app.multiselect(key="filter_flag").select("stale").run()
    assert sorted(admin_app.dataframe[0].value["name"]) == ["idle-0", "idle-1"]
    admin_app.button(key="bulk_revoke").click().run()
    assert not admin_app.exception, admin_app.exception
    (plan,) = list_plans(engine.db)
    assert sorted(plan.parameters["key_ids"]) == sorted(k.id for k in idle)
    assert {engine.keys.show(k.id).status for k in idle} == {"active"}, "nothing before applying"
    apply_plan(admin_app, "keys_bulk_revoke", plan.confirm_phrase)
    assert not admin_app.exception, admin_app.exception
    assert {engine.keys.show(k.id).status for k in idle} == {"revoked"}
    revoked = [e for e in engine.keys.audit() if e["event"] == "revoked"]
    assert {e["key_name"] for e in revoked} == {"idle-0", "idle-1"} and {e["actor"] for e in revoked} == {
        "ops-admin"
    }


def test_the_page_shows_each_keys_traffic_and_the_top_keys(admin_app: AppTest, engine: Engine) -> None:
    busy = engine.keys.create("busy-bot", actor="test")
    # Counted and shown within one hour: at half past (ticking), never across an hour boundary.
    with time_machine.travel(utcnow().replace(minute=30, second=0, microsecond=0), tick=True):
        for status in [200] * 5 + [429] * 2:
            engine.keys.usage.count(busy.id, status)
        engine.keys.usage.flush()
        open_page(admin_app, "keys")
    assert not admin_app.exception, admin_app.exception
    table = admin_app.dataframe[0].value
    sparkline = dict(zip(table["name"], table["requests, 24 h"], strict=True))["busy-bot"]
    assert sum(sparkline) == 7 and len(sparkline) == 24 and sparkline[-1] == 7
    assert "Top keys by requests" in texts(admin_app)
    tops = [df.value for df in admin_app.dataframe if "rate_limited" in df.value.columns]
    assert tops[0]["name"].iloc[0] == "busy-bot" and list(tops[1]["rate_limited"]) == [2]
