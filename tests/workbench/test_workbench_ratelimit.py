"""Workbench actions are charged to the signed-in key's rate limit, by the limiter the API uses:
a key that used its limit up gets a clear message on the page and nothing is done."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REDIS_URL, make_settings
from streamlit.testing.v1 import AppTest

from jamey_engine.engine import Engine
from jamey_engine.keys.ratelimit import RateLimiter

from .conftest import APP, TIMEOUT, open_page, sign_in, texts


def test_an_exhausted_key_is_told_so_and_its_action_is_not_done(
    engine: Engine, wb_env: Path, app: AppTest
) -> None:
    engine.memory.store_batch("working", [f"note {i}" for i in range(3)])
    key = engine.keys.create("busy-admin", scopes=("admin",), rate_limit="2/minute", actor="test")
    sign_in(app, key.key)
    assert not app.exception, app.exception
    open_page(app, "backups")
    for _ in range(2):  # two backups: the key's two actions this minute
        app.button(key="backup_create").click().run()
        assert not app.exception, app.exception
    assert len(engine.vault.list()) == 2
    app.button(key="backup_create").click().run()
    assert not app.exception, app.exception
    refused = [error.value for error in app.error]
    assert len(refused) == 1, texts(app)
    assert "Over this key's rate limit (2 requests, shared with the API); nothing was done." in refused[0]
    assert "Try again in" in refused[0]
    assert len(engine.vault.list()) == 2  # the third backup was not taken
    # Viewing is not an action: the page still renders for the exhausted key.
    open_page(app, "memory")
    assert not app.exception, app.exception
    assert not app.error


def test_the_workbench_and_the_api_share_the_key_s_counter_in_redis(
    engine: Engine, wb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAMEY_RATE_LIMIT_STORAGE", REDIS_URL)
    key = engine.keys.create("shared-admin", scopes=("admin",), rate_limit="1/minute", actor="test")
    # The API's charge (as service/auth.py makes it): the limiter over the same settings.
    api = RateLimiter.from_settings(make_settings(wb_env, JAMEY_RATE_LIMIT_STORAGE=REDIS_URL))
    try:
        assert api.hit(key.info.id, key.info.rate_limit).allowed
        app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        sign_in(app, key.key)
        open_page(app, "backups")
        app.button(key="backup_create").click().run()
        assert not app.exception, app.exception
        assert engine.vault.list() == []  # the API used the key's one request this minute
        assert "Over this key's rate limit (1 requests, shared with the API)" in app.error[0].value
    finally:
        api.reset(key.info.id, key.info.rate_limit)
        api.close()
