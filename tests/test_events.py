"""EventPublisher against the real Mosquitto broker, and against a broker that is down."""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from helpers import closed_port, wait_until
from private_servers import PrivateMosquitto

from jamey_engine.errors import ConfigError
from jamey_engine.events import EventPublisher, encode_event, topic_for

MQTT_URL = os.environ.get("JAMEY_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")  # as tests/conftest.py

pytestmark = pytest.mark.mqtt


class Subscriber:
    """A separate paho client subscribed to jamey/events/#, collecting (topic, json) pairs."""

    def __init__(self, url: str, *, persistent: bool = False) -> None:
        """Subscribe now; a ``persistent`` session keeps its subscription and queue across restarts."""
        parts = urlsplit(url)
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"jamey-test-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("jamey/events/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = lambda c, u, msg: self.messages.put(
            (msg.topic, json.loads(msg.payload.decode("utf-8")))
        )
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the test subscriber could not subscribe"

    def next(self, timeout: float = 10.0) -> tuple[str, dict[str, Any]]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber(MQTT_URL)
    yield sub
    sub.close()


def test_published_event_arrives_as_json_on_its_topic(subscriber: Subscriber) -> None:
    publisher = EventPublisher(MQTT_URL)
    try:
        wait_until(lambda: publisher.connected, 10, "the publisher to connect to Mosquitto", every=0.02)
        marker = uuid.uuid4().hex
        publisher.publish("backup", {"backup_id": marker, "size_bytes": 123})
        while True:
            topic, body = subscriber.next()
            if body.get("backup_id") == marker:
                break
        assert topic == "jamey/events/backup"
        assert body["kind"] == "backup"
        assert body["size_bytes"] == 123
        assert "at" in body
        assert publisher.published >= 1
        assert publisher.connection_failures == 0
    finally:
        publisher.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    broker = PrivateMosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _next_with(subscriber: Subscriber, field: str, value: str) -> tuple[str, dict[str, Any]]:
    while True:
        topic, body = subscriber.next(timeout=30)
        if body.get(field) == value:
            return topic, body


def test_events_published_before_connecting_are_delivered_once_connected(
    private_broker: PrivateMosquitto,
) -> None:
    subscriber = Subscriber(private_broker.url, persistent=True)
    private_broker.stop()  # the broker saves the subscriber's session; nothing listens now
    publisher = EventPublisher(private_broker.url, min_delay=1, max_delay=1)
    try:
        marker = uuid.uuid4().hex
        publisher.publish("key", {"key_id": marker, "event": "created"})
        assert publisher.connected is False  # no CONNACK can have come: the broker is down
        assert publisher.pending() == 1
        private_broker.start()
        topic, _ = _next_with(subscriber, "key_id", marker)
        assert topic == "jamey/events/key"
        assert publisher.connected is True
        assert publisher.pending() == 0
    finally:
        publisher.close()
        subscriber.close()


def test_events_queued_while_the_broker_is_down_are_delivered_after_it_returns(
    private_broker: PrivateMosquitto,
) -> None:
    subscriber = Subscriber(private_broker.url, persistent=True)
    publisher = EventPublisher(private_broker.url, min_delay=1, max_delay=1)
    try:
        wait_until(lambda: publisher.connected, 30, "the publisher to connect", every=0.02)
        first = uuid.uuid4().hex
        publisher.publish("backup", {"backup_id": first})
        _next_with(subscriber, "backup_id", first)
        private_broker.stop()
        wait_until(
            lambda: not publisher.connected, 30, "the publisher to notice the lost connection", every=0.02
        )
        assert publisher.connection_failures >= 1
        queued = [uuid.uuid4().hex for _ in range(3)]
        for marker in queued:
            publisher.publish("backup", {"backup_id": marker})
        assert publisher.pending() == 3  # held while the broker is away
        private_broker.start()
        delivered: list[str] = []
        while len(delivered) < len(queued):
            marker = subscriber.next(timeout=30)[1]["backup_id"]
            if marker in queued:  # skip a redelivery of the first event, if the broker sends one
                delivered.append(marker)
        assert delivered == queued
        assert publisher.connected is True  # it reconnected by itself
        assert publisher.dropped == 0
    finally:
        publisher.close()
        subscriber.close()


def _publish_many_in_a_thread(publisher: EventPublisher, count: int) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: [publisher.publish("prune", {"n": number}) for number in range(count)], daemon=True
    )
    thread.start()
    return thread


def test_a_broker_that_is_down_never_blocks_publish_and_counts_failures() -> None:
    url = f"mqtt://127.0.0.1:{closed_port()}"  # nothing listens there
    publisher = EventPublisher(url, min_delay=1, max_delay=2)
    try:
        publishing = _publish_many_in_a_thread(publisher, 200)
        publishing.join(timeout=30)  # a blocked publish would hang here; speed is for bench/
        assert not publishing.is_alive(), "publish blocked against a down broker"
        wait_until(lambda: publisher.connection_failures >= 1, 10, "a counted connection failure", every=0.02)
        assert publisher.connected is False
        assert publisher.pending() == 200  # held for when the broker comes back
    finally:
        publisher.close()


def test_a_broker_that_accepts_but_never_answers_never_blocks_publish() -> None:
    with socket.socket() as silent:  # completes the TCP handshake, never sends a CONNACK
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        publisher = EventPublisher(f"mqtt://127.0.0.1:{silent.getsockname()[1]}", min_delay=1, max_delay=2)
        try:
            publishing = _publish_many_in_a_thread(publisher, 200)
            publishing.join(timeout=30)
            assert not publishing.is_alive(), "publish blocked on a broker that does not answer"
            assert publisher.connected is False
            assert publisher.pending() == 200
        finally:
            publisher.close()


def test_a_full_queue_drops_the_oldest_event_and_counts_it() -> None:
    url = f"mqtt://127.0.0.1:{closed_port()}"
    publisher = EventPublisher(url, queue_size=5)
    try:
        for number in range(8):
            publisher.publish("prune", {"n": number})
        assert publisher.pending() == 5
        assert publisher.dropped == 3
        kept = [json.loads(body)["n"] for _, body in publisher._queue]
        assert kept == [3, 4, 5, 6, 7]
    finally:
        publisher.close()


def test_publisher_is_a_no_op_without_a_url() -> None:
    publisher = EventPublisher("")
    publisher.publish("key", {"x": 1})
    assert publisher.enabled is False
    assert publisher.pending() == 0
    assert publisher.connected is False
    publisher.close()


def test_publish_never_raises_on_an_unencodable_payload() -> None:
    publisher = EventPublisher(f"mqtt://127.0.0.1:{closed_port()}")
    try:
        cyclic: dict[str, Any] = {}
        cyclic["self"] = cyclic
        publisher.publish("key", cyclic)
        assert publisher.dropped == 1
    finally:
        publisher.close()


def test_a_url_without_a_host_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="JAMEY_MQTT_URL"):
        EventPublisher("mqtt://")


def test_encoded_event_keeps_payload_and_adds_kind_and_time() -> None:
    body = json.loads(encode_event("restore", {"backup_id": "b1", "layers": ("a", "b")}))
    assert body["kind"] == "restore"
    assert body["layers"] == ["a", "b"]
    assert body["at"].endswith("+00:00")
    assert topic_for("restore") == "jamey/events/restore"
