"""The Approvals page and the shared plan component with JAMEY_APPROVALS: a plan made on the
Memory page waits for a second key, which approves or rejects it (with a comment) on the
Approvals page; the planner then applies it (or cannot). Real keys, database and indexes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.plans.store import events, get, list_plans

from .conftest import APP, TIMEOUT, apply_plan, open_page, sign_in, texts

PLAN_PRUNE = "FormSubmitter:prune-Plan the prune"


@pytest.fixture
def team(engine: Engine, wb_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """JAMEY_APPROVALS=prune, old memories to prune, and the keys of two admins and a reader."""
    monkeypatch.setenv("JAMEY_APPROVALS", "prune")
    now = utcnow()
    engine.memory.store_batch(
        "working", [{"content": f"old note {i}", "timestamp": now - timedelta(days=60 + i)} for i in range(3)]
    )
    keys = {
        name: engine.keys.create(name, scopes=(scope,), actor="test").key
        for name, scope in (("ana", "admin"), ("bo", "admin"), ("watcher", "ops:read"))
    }
    engine.close()
    return keys


def signed_in(key: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    sign_in(at, key)
    assert not at.exception, at.exception
    return at


def plan_prune(at: AppTest) -> None:
    open_page(at, "memory")
    at.text_input(key="prune_older").input("30d")
    at.button(key=PLAN_PRUNE).click().run()
    assert not at.exception, at.exception


def test_a_plan_waits_for_a_second_key_which_approves_it_then_the_planner_applies(
    engine: Engine, team: dict[str, str]
) -> None:
    ana = signed_in(team["ana"])
    plan_prune(ana)
    (plan,) = list_plans(engine.db)
    assert plan.status == "pending_approval"
    assert "Waiting for approval by a second key" in texts(ana)
    assert not [b for b in ana.button if b.key == "FormSubmitter:plan_apply_memory_prune-Apply"]
    # The planner's own Approvals page does not offer her own plan.
    open_page(ana, "approvals")
    assert "No plan is waiting for your approval." in texts(ana)

    bo = signed_in(team["bo"])
    open_page(bo, "approvals")
    assert not bo.exception, bo.exception
    assert f"**Plan {plan.id}**" in texts(bo) and "planned by **ana**" in texts(bo)
    layers = next(df.value for df in bo.dataframe if "to_delete" in df.value.columns).set_index("layer")
    assert layers.loc["working", "to_delete"] == 3  # the plan's full detail
    bo.button(key=f"FormSubmitter:decide_{plan.id}-Approve").click().run()
    assert any("comment is required" in e.value for e in bo.error), [e.value for e in bo.error]
    assert get(engine.db, plan.id).status == "pending_approval"
    bo.text_input(key=f"comment_{plan.id}").input("checked the cutoff with ana")
    bo.button(key=f"FormSubmitter:decide_{plan.id}-Approve").click().run()
    assert not bo.exception, bo.exception
    assert f"Plan {plan.id} (prune) approved" in texts(bo)
    assert get(engine.db, plan.id).status == "approved"
    assert engine.memory.count("working") == 3, "approving changes nothing"

    open_page(ana, "memory")
    assert "Approved by bo: checked the cutoff with ana" in texts(ana)
    apply_plan(ana, "memory_prune", plan.confirm_phrase)
    assert not ana.exception, ana.exception
    assert f"Plan {plan.id} applied (prune" in texts(ana)
    assert engine.memory.count("working") == 0
    trail = [(event["event"], event["actor"]) for event in events(engine.db, plan.id)]
    assert [name for name, _ in trail][:2] == ["planned", "approved"]
    assert ("approved", "bo") in trail and ("planned", "ana") in trail


def test_a_rejected_plan_cannot_be_applied(engine: Engine, team: dict[str, str]) -> None:
    ana = signed_in(team["ana"])
    plan_prune(ana)
    (plan,) = list_plans(engine.db)
    bo = signed_in(team["bo"])
    open_page(bo, "approvals")
    bo.text_input(key=f"comment_{plan.id}").input("not during the incident")
    bo.button(key=f"FormSubmitter:decide_{plan.id}-Reject").click().run()
    assert not bo.exception, bo.exception
    assert get(engine.db, plan.id).status == "rejected"
    open_page(ana, "memory")
    assert "Rejected by bo: not during the incident" in texts(ana)
    assert not [b for b in ana.button if b.key == "FormSubmitter:plan_apply_memory_prune-Apply"]
    assert engine.memory.count("working") == 3


def test_a_key_without_the_scope_cannot_open_approvals(engine: Engine, team: dict[str, str]) -> None:
    watcher = signed_in(team["watcher"])
    open_page(watcher, "approvals")
    assert not watcher.exception, watcher.exception
    assert "ops:write" in texts(watcher)
    assert "Approve" not in [b.label for b in watcher.button]
