"""Optional MQTT events: key, backup, restore and prune events as JSON on ``jamey/events/<kind>``.

``EventPublisher.publish`` never blocks and never raises. It appends the event to a bounded
in-memory queue (dropping the oldest event, and counting it, when the queue is full); a
background thread hands queued events to paho-mqtt (QoS 1) while the broker is connected.
paho's own network thread connects, and reconnects with exponential backoff between
``min_delay`` and ``max_delay`` seconds, so a broker that is down never slows a caller.

With ``JAMEY_MQTT_URL`` empty the publisher is off: ``publish`` is a no-op.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import uuid
from collections import deque
from datetime import date, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.errors import ConfigError

log = logging.getLogger(__name__)

TOPIC_PREFIX = "jamey/events/"
DEFAULT_QUEUE_SIZE = 1000
_MQTT_SUCCESS = 0  # paho MQTTErrorCode.MQTT_ERR_SUCCESS
_MQTT_NO_CONN = 4  # paho MQTTErrorCode.MQTT_ERR_NO_CONN


def topic_for(kind: str) -> str:
    """The MQTT topic an event of ``kind`` is published on."""
    return TOPIC_PREFIX + kind


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def encode_event(kind: str, payload: dict[str, Any]) -> bytes:
    """The JSON bytes published for an event: the payload plus ``kind`` and ``at`` (if missing)."""
    body = dict(payload)
    body.setdefault("kind", kind)
    body.setdefault("at", utcnow().isoformat())
    return json.dumps(body, default=_json_default, sort_keys=True).encode("utf-8")


class EventPublisher:
    """Publishes events to an MQTT broker in the background; a no-op when ``url`` is empty.

    Attributes read by the metrics: ``connected`` (bool), ``connection_failures`` (failed
    connection attempts plus connections lost), ``dropped`` (events discarded because the
    queue was full or the publisher closed) and ``published`` (events handed to the broker).
    """

    def __init__(
        self,
        url: str = "",
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        min_delay: int = 1,
        max_delay: int = 30,
        client_id: str | None = None,
    ) -> None:
        """Start the background threads when ``url`` is set (mqtt:// or mqtts://).

        Raises ConfigError when the URL is not an MQTT URL with a host. Never contacts the
        broker synchronously: the first connection attempt happens on paho's thread.
        """
        self.url = url
        self.connected = False
        self.connection_failures = 0
        self.dropped = 0
        self.published = 0
        self._queue: deque[tuple[str, bytes]] = deque()
        self._queue_size = max(1, queue_size)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._client: Any = None
        self._worker: threading.Thread | None = None
        if not url:
            return
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ConfigError("JAMEY_MQTT_URL", url, "must be an mqtt:// URL such as mqtt://127.0.0.1:1883")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise ConfigError("JAMEY_MQTT_URL", url, "the port is not a number") from None
        self._start_client(parts.hostname, port, parts, min_delay, max_delay, client_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventPublisher:
        """A publisher for ``settings.mqtt_url`` (off when it is empty)."""
        return cls(settings.mqtt_url)

    @property
    def enabled(self) -> bool:
        """True when a broker URL was configured."""
        return bool(self.url)

    def _start_client(
        self,
        host: str,
        port: int,
        parts: Any,
        min_delay: int,
        max_delay: int,
        client_id: str | None,
    ) -> None:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"jamey-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        )
        if parts.username:
            client.username_pw_set(unquote(parts.username), unquote(parts.password or "") or None)
        if parts.scheme == "mqtts":
            client.tls_set_context(ssl.create_default_context())
        client.reconnect_delay_set(min_delay=min_delay, max_delay=max_delay)
        client.max_queued_messages_set(self._queue_size)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        self._client = client
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        self._worker = threading.Thread(target=self._drain, name="jamey-events", daemon=True)
        self._worker.start()

    # paho callbacks (run on paho's network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            with self._lock:
                self.connection_failures += 1
            log.warning("MQTT broker refused the connection: %s", reason_code)
            return
        with self._wake:
            self.connected = True
            self._wake.notify_all()
        log.info("connected to the MQTT broker")

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        with self._lock:
            self.connection_failures += 1
            failures = self.connection_failures
        # Log the first failure loudly, later ones quietly: the backoff retries forever.
        log.log(logging.WARNING if failures == 1 else logging.DEBUG, "cannot reach the MQTT broker; retrying")

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        with self._lock:
            was_connected = self.connected
            self.connected = False
            if was_connected and not self._closed:
                self.connection_failures += 1
        if was_connected and not self._closed:
            log.warning("lost the MQTT broker connection (%s); reconnecting", reason_code)

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue an event for ``jamey/events/<kind>``. Never blocks, never raises.

        When the queue is full the oldest queued event is dropped and counted in ``dropped``.
        """
        if not self.url or self._closed:
            return
        try:
            message = (topic_for(kind), encode_event(kind, payload))
        except Exception:  # a payload we cannot encode must not fail the caller
            log.warning("could not encode a %s event; dropped", kind, exc_info=True)
            with self._lock:
                self.dropped += 1
            return
        with self._wake:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(message)
            self._wake.notify()

    def _drain(self) -> None:
        """Hand queued events to paho while connected; wait (bounded) otherwise."""
        while True:
            with self._wake:
                while not self._closed and (not self._queue or not self.connected):
                    self._wake.wait(timeout=1.0)
                if self._closed:
                    return
                topic, body = self._queue.popleft()
            try:
                info = self._client.publish(topic, body, qos=1)
            except Exception:
                log.warning("MQTT publish failed; event dropped", exc_info=True)
                info = None
            with self._lock:
                # NO_CONN: paho keeps QoS 1 messages and sends them after reconnecting.
                if info is not None and info.rc in (_MQTT_SUCCESS, _MQTT_NO_CONN):
                    self.published += 1
                else:
                    self.dropped += 1

    def pending(self) -> int:
        """Events queued and not yet handed to the broker."""
        with self._lock:
            return len(self._queue)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait up to ``timeout`` seconds for the queue to empty; True if it did."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.01)
        return self.pending() == 0

    def close(self) -> None:
        """Flush briefly (while connected), then stop the threads and disconnect."""
        if self._client is None or self._closed:
            self._closed = True
            return
        if self.connected:
            self.flush(timeout=2.0)
        with self._wake:
            self._closed = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=2.0)
        try:
            self._client.disconnect()
            self._client.loop_stop()
        except Exception:
            log.debug("error while stopping the MQTT client", exc_info=True)
        self.connected = False
