"""Every backup and restore attempt reaches the operation log and the MQTT broker (real Mosquitto)."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from helpers import MQTT_URL, make_settings

from jamey_engine.engine import Engine
from jamey_engine.errors import Unavailable
from jamey_engine.oplog import operation_summary

pytestmark = pytest.mark.mqtt


@pytest.fixture
def messages() -> Iterator[queue.Queue[tuple[str, dict[str, Any]]]]:
    """Backup and restore events from the broker, as (topic, payload)."""
    parts = urlsplit(MQTT_URL)
    received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"vault-test-{uuid.uuid4().hex[:8]}"
    )
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(
        [("jamey/events/backup", 1), ("jamey/events/restore", 1)]
    )
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    client.on_message = lambda c, u, msg: received.put((msg.topic, json.loads(msg.payload)))
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    assert subscribed.wait(10)
    yield received
    client.disconnect()
    client.loop_stop()


def own_events(
    messages: queue.Queue[tuple[str, dict[str, Any]]], count: int, *marks: str
) -> list[tuple[str, dict[str, Any]]]:
    """The first ``count`` events whose detail names one of ``marks``: tests in other
    pytest-xdist workers publish their backups to the same broker."""
    found: list[tuple[str, dict[str, Any]]] = []
    while len(found) < count:
        topic, payload = messages.get(timeout=10)
        if any(mark in str(payload.get("detail", "")) for mark in marks):
            found.append((topic, payload))
    return found


def test_backups_and_restores_are_recorded_and_published_success_or_failure(
    tmp_path: Path, messages: queue.Queue[tuple[str, dict[str, Any]]]
) -> None:
    engine = Engine(make_settings(tmp_path / "data", JAMEY_MQTT_URL=MQTT_URL))
    try:
        engine.memory.store("working", "worth keeping")
        backup = engine.vault.create()
        engine.vault.restore(backup.id, safety_backup=False)
        blocked = engine.settings.with_overrides(backup_dir=tmp_path / "file-not-dir")
        (tmp_path / "file-not-dir").write_text("in the way")
        engine.vault.settings = blocked
        engine.vault.catalog.backup_dir = blocked.backup_dir
        with pytest.raises(Unavailable, match="file-not-dir"):
            engine.vault.create()

        received = own_events(messages, 3, backup.id, str(tmp_path))
        # The payload names the kind through its topic and carries the status and numbers.
        by_topic = [(topic.rsplit("/", 1)[1], payload["status"]) for topic, payload in received]
        assert by_topic == [("backup", "success"), ("restore", "success"), ("backup", "failure")]
        assert received[0][1]["size_bytes"] == backup.size_bytes
        summary = operation_summary(engine.db)
        assert summary.counts[("backup", "success")] == 1
        assert summary.counts[("backup", "failure")] == 1
        assert summary.counts[("restore", "success")] == 1
        assert summary.last_size_bytes["backup"] == backup.size_bytes
    finally:
        engine.close()
