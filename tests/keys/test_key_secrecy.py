"""No plaintext key anywhere it could leak: the database (file or server), the logs, the events."""

from __future__ import annotations

import json
import logging
import os
import queue
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.keys import KeyManager

# As tests/conftest.py (not imported: another directory's conftest module may shadow it).
MQTT_URL = os.environ.get("JAMEY_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def exercise(keys: KeyManager) -> list[str]:
    """Create, verify, rotate and import keys; return every plaintext and secret part seen."""
    created = keys.create("secrecy", scopes=("memory:read", "admin"), expires_in=timedelta(days=1))
    keys.verify(created.key)
    rotated = keys.rotate(created.id, grace=timedelta(hours=1))
    keys.verify(rotated.key)
    keys.verify(created.key)
    keys.set_limit(rotated.id, "5/second")
    keys.import_legacy()
    keys.verify("legacy-plaintext-value")
    keys.flush_last_used()
    return [
        created.key,
        created.key.split("_")[2],
        rotated.key,
        rotated.key.split("_")[2],
        "legacy-plaintext-value",
    ]


def test_the_database_holds_no_plaintext_key_nor_secret(
    db_engine: Engine, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = db_engine.settings.with_overrides(legacy_api_key="legacy-plaintext-value")
    keys = KeyManager(db_engine.db, settings)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # log every statement
        try:
            secrets = exercise(keys)
        finally:
            logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    dumped = json.dumps(db_engine.db.dump(), default=str)
    assert "INSERT INTO api_keys" in caplog.text  # the statements were logged
    for secret in secrets:
        assert secret not in dumped
        assert secret not in caplog.text
    if db_engine.db.dialect == "sqlite":
        db_engine.close()
        files = [p for p in data_dir.rglob("*") if p.is_file()]
        assert any(p.name == "jamey.db" for p in files)
        for path in files:
            content = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in content, f"{secret[:6]}… found in {path.name}"


@pytest.mark.mqtt
def test_key_events_reach_mqtt_without_secrets(data_dir: Path) -> None:
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    parts = urlsplit(MQTT_URL)
    subscribed = queue.Queue[bool]()
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"jamey-keys-{uuid.uuid4().hex[:8]}"
    )
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("jamey/events/key", qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(True)
    client.on_message = lambda c, u, msg: received.put(json.loads(msg.payload))
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), "JAMEY_MQTT_URL": MQTT_URL}))
    try:
        assert subscribed.get(timeout=10)
        created = engine.keys.create(f"mqtt-{uuid.uuid4().hex[:6]}", actor="alice")
        rotated = engine.keys.rotate(created.id, actor="alice")
        engine.keys.set_limit(rotated.id, "3/second", actor="alice")
        engine.keys.revoke(rotated.id, actor="alice")
        # Other pytest-xdist workers' tests publish key events to the same broker.
        mine: list[dict[str, Any]] = []
        while len(mine) < 4:
            payload = received.get(timeout=10)
            if payload.get("id") in {created.id, rotated.id}:
                mine.append(payload)
    finally:
        engine.close()
        client.loop_stop()
        client.disconnect()
    assert [p["action"] for p in mine] == ["created", "rotated", "rate_limit_changed", "revoked"]
    assert mine[1]["new_id"] == rotated.id
    assert all(p["actor"] == "alice" for p in mine)
    text = json.dumps(mine)
    for secret in (created.key, rotated.key, created.key.split("_")[2], rotated.key.split("_")[2]):
        assert secret not in text
