"""Approvals by a second key: required, refused from the planner, the CLI, a key without the scope;
expired; rejected; the whole trail in the plans' audit (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from jamey_engine import plans
from jamey_engine.engine import Engine
from jamey_engine.errors import Conflict, Forbidden, InvalidInput
from jamey_engine.plans import Actor, store

from .conftest import actor_of, add_memories


def test_a_plan_that_needs_approval_waits_and_only_another_key_with_the_scope_approves_it(
    approvals_engine: Engine,
) -> None:
    engine = approvals_engine
    add_memories(engine)
    alice = actor_of(engine, "alice", ("ops:write",))
    planned = plans.plan(engine, "prune", {"older_than": "30d"}, alice)
    assert planned.status == "pending_approval" and planned.requires_approval
    assert store.pending_approval_count(engine.db) == 1

    with pytest.raises(Conflict, match=f"jamey plans approve {planned.id}"):
        plans.apply(engine, planned.id, planned.confirm_phrase, alice)
    with pytest.raises(Forbidden, match="another key"):
        plans.approve(engine, planned.id, alice, "looks fine to me")
    with pytest.raises(Forbidden, match="with a key"):
        plans.approve(engine, planned.id, Actor.cli(), "from the host")
    alice_again = Actor("alice", ("admin",), "other-id")  # another key under the same name
    with pytest.raises(Forbidden, match="another key"):
        plans.approve(engine, planned.id, alice_again, "same person, other key")
    reader = actor_of(engine, "carol", ("ops:read",))
    with pytest.raises(Forbidden, match="ops:write"):
        plans.approve(engine, planned.id, reader, "I can only look")
    bob = actor_of(engine, "bob", ("ops:write",))
    with pytest.raises(InvalidInput, match="comment is required"):
        plans.approve(engine, planned.id, bob, "  ")
    assert engine.memory.count("working") == 8
    assert store.get(engine.db, planned.id).status == "pending_approval"

    approved = plans.approve(engine, planned.id, bob, "checked the counts")
    assert approved.status == "approved"
    assert approved.as_dict()["approval"]["by"] == "bob"
    assert store.pending_approval_count(engine.db) == 0
    done = plans.apply(engine, planned.id, planned.confirm_phrase, alice)
    assert done.as_dict()["approved_by"] == "bob" and engine.memory.count("working") == 3

    trail = [(e["event"], e["actor"]) for e in store.events(engine.db, planned.id)]
    assert trail == [
        ("planned", "alice"),
        ("apply_refused", "alice"),
        ("approve_refused", "alice"),
        ("approve_refused", "cli"),
        ("approve_refused", "alice"),
        ("approve_refused", "carol"),
        ("approved", "bob"),
        ("applying", "alice"),
        ("applied", "alice"),
    ]


def test_a_rejected_plan_cannot_be_applied_or_approved(approvals_engine: Engine) -> None:
    engine = approvals_engine
    one = engine.keys.create("victim", scopes=("memory:read",))
    alice = actor_of(engine, "alice", ("admin",))
    bob = actor_of(engine, "bob", ("admin",))
    planned = plans.plan(engine, "key-revoke", {"key_ids": one.id}, alice)

    rejected = plans.reject(engine, planned.id, bob, "not during the release")

    assert rejected.status == "rejected" and rejected.decision_comment == "not during the release"
    with pytest.raises(Conflict, match="rejected"):
        plans.apply(engine, planned.id, planned.confirm_phrase, alice)
    with pytest.raises(Conflict, match="rejected"):
        plans.approve(engine, planned.id, bob, "changed my mind")
    assert engine.keys.show(one.id).status == "active"


def test_an_approval_expires_with_its_plan(approvals_engine: Engine) -> None:
    engine = approvals_engine
    add_memories(engine)
    alice = actor_of(engine, "alice", ("ops:write",))
    bob = actor_of(engine, "bob", ("ops:write",))
    planned = plans.plan(engine, "prune", {"older_than": "30d"}, alice)
    plans.approve(engine, planned.id, bob, "fine")

    later = planned.expires_at + timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        with pytest.raises(Conflict, match="expired; plan again"):
            plans.apply(engine, planned.id, planned.confirm_phrase, alice)
        assert store.get(engine.db, planned.id).status == "expired"
        assert [p.id for p in store.list_plans(engine.db, status="expired")] == [planned.id]
    assert engine.memory.count("working") == 8
