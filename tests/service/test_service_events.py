"""With JAMEY_MQTT_URL set, key changes made over HTTP arrive as JSON on jamey/events/key (real Mosquitto)."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from service_support import TestClient, make_persona, sample

from jamey_engine.engine import Engine

pytestmark = pytest.mark.mqtt

MQTT_URL = os.environ.get("JAMEY_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def subscribe(topic: str) -> tuple[mqtt.Client, queue.Queue[dict[str, Any]]]:
    parts = urlsplit(MQTT_URL)
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    ready = threading.Event()
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}"
    )
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    client.on_message = lambda c, u, msg: received.put(json.loads(msg.payload))
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    assert ready.wait(10), "could not subscribe to the test broker"
    return client, received


def test_a_key_created_over_http_is_published_without_its_secret(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client(JAMEY_MQTT_URL=MQTT_URL)
    admin = make_persona(engine, "events-admin", ("admin",))
    subscriber, received = subscribe("jamey/events/key")
    try:
        deadline = time.monotonic() + 10
        while not engine.events.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        name = f"evented-{uuid.uuid4().hex[:8]}"
        created = client.post("/admin/keys", json={"name": name}, headers=admin.headers)
        assert created.status_code == 201, created.text
        while True:
            event = received.get(timeout=10)
            if event.get("name") == name:
                break
        assert event["kind"] == "key"
        assert event["id"] == created.json()["id"]
        assert event["actor"] == "events-admin"
        assert created.json()["key"] not in json.dumps(event)
        assert sample(client, "mqtt_connected") == 1
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
