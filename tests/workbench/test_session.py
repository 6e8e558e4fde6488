"""WorkbenchSession against the real KeyManager: admin-only sign-in, idle expiry, and a fresh
key check before every action."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import Forbidden, KeyRejected
from workbench_ui.session import SessionExpired, WorkbenchSession

IDLE = timedelta(minutes=30)


@pytest.fixture
def fast_engine(data_dir: Path) -> Iterator[Engine]:
    """An engine whose key cache is too short to hide a revocation."""
    eng = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), "JAMEY_KEY_CACHE_SECONDS": "0.001"}))
    yield eng
    eng.close()


def test_sign_in_takes_the_actor_from_the_key_name(fast_engine: Engine) -> None:
    key = fast_engine.keys.create("alice", scopes=("admin",), actor="test").key
    session = WorkbenchSession.sign_in(fast_engine.keys, f"  {key}\n", IDLE)
    assert session.actor == "alice"
    assert session.key == key
    assert key not in repr(session), "the plaintext never reaches a log line through repr"


def test_sign_in_refuses_a_key_without_ops_read_naming_it(fast_engine: Engine) -> None:
    key = fast_engine.keys.create("bob", scopes=("memory:read", "memory:write"), actor="test").key
    with pytest.raises(Forbidden, match="'bob' has scopes memory:read, memory:write") as caught:
        WorkbenchSession.sign_in(fast_engine.keys, key, IDLE)
    assert "ops:read" in caught.value.message, caught.value.message
    for scopes in (("ops:read",), ("ops:write",)):  # no admin needed: ops:read (or what grants it)
        reader = fast_engine.keys.create(f"carol-{scopes[0]}", scopes=scopes, actor="test").key
        assert WorkbenchSession.sign_in(fast_engine.keys, reader, IDLE).scopes == scopes


@pytest.mark.parametrize("text", ["", "   ", "jmy_nonsense", "sk-live-123"])
def test_sign_in_refuses_missing_and_malformed_keys(fast_engine: Engine, text: str) -> None:
    with pytest.raises(KeyRejected):
        WorkbenchSession.sign_in(fast_engine.keys, text, IDLE)


def test_authorize_checks_the_key_again(fast_engine: Engine) -> None:
    created = fast_engine.keys.create("alice", scopes=("admin",), actor="test")
    session = WorkbenchSession.sign_in(fast_engine.keys, created.key, IDLE)
    assert session.authorize(fast_engine.keys) == "alice"
    fast_engine.keys.revoke(created.id, actor="charlie")
    with pytest.raises(KeyRejected) as caught:
        session.authorize(fast_engine.keys)
    assert caught.value.reason == "revoked"


def test_authorize_refuses_an_expired_key(fast_engine: Engine) -> None:
    created = fast_engine.keys.create(
        "short", scopes=("admin",), expires_in=timedelta(minutes=5), actor="test"
    )
    session = WorkbenchSession.sign_in(fast_engine.keys, created.key, IDLE)
    with (
        time_machine.travel(utcnow() + timedelta(minutes=6), tick=False),
        pytest.raises(KeyRejected) as caught,
    ):
        session.authorize(fast_engine.keys)
    assert caught.value.reason == "expired"


def test_idle_sessions_expire_and_activity_extends_them(fast_engine: Engine) -> None:
    key = fast_engine.keys.create("alice", scopes=("admin",), actor="test").key
    start = utcnow()
    session = WorkbenchSession.sign_in(fast_engine.keys, key, IDLE, now=start)
    session.touch(start + timedelta(minutes=29))
    assert not session.expired(start + timedelta(minutes=58))
    assert session.expired(start + timedelta(minutes=60))
    with pytest.raises(SessionExpired, match="Signed out after 30m without activity"):
        session.authorize(fast_engine.keys, now=start + timedelta(minutes=60))
    with pytest.raises(SessionExpired):
        session.touch(start + timedelta(minutes=60))


def test_check_verifies_without_counting_as_activity(fast_engine: Engine) -> None:
    created = fast_engine.keys.create("alice", scopes=("admin",), actor="test")
    start = utcnow()
    session = WorkbenchSession.sign_in(fast_engine.keys, created.key, IDLE, now=start)
    assert session.check(fast_engine.keys, now=start + timedelta(minutes=20)) == "alice"
    assert session.last_active == start, "an auto-refresh does not keep a session alive"
    fast_engine.keys.revoke(created.id, actor="test")
    with pytest.raises(KeyRejected):
        session.check(fast_engine.keys, now=start + timedelta(minutes=21))


def test_a_session_knows_its_keys_scopes_and_checks_the_one_an_action_needs(engine: Engine) -> None:
    created = engine.keys.create("operator", scopes=("admin",), actor="test")
    session = WorkbenchSession.sign_in(engine.keys, created.key, timedelta(minutes=5))
    assert session.scopes == ("admin",)
    assert session.can("ops:write") and session.can("ops:read") and session.can("admin")
    assert session.authorize(engine.keys, needs="ops:write") == "operator"
    reader = engine.keys.create("reader", scopes=("memory:read",), actor="test")
    with pytest.raises(Forbidden, match="memory:read"):
        WorkbenchSession.sign_in(engine.keys, reader.key, timedelta(minutes=5))
