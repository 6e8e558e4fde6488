"""Approving a plan publishes an MQTT event (a real Mosquitto broker)."""

from __future__ import annotations

from pathlib import Path

from helpers import MQTT_URL, make_settings, wait_until
from test_events import Subscriber

from jamey_engine.engine import Engine
from jamey_engine.plans import Actor, approve, plan


def test_approving_a_plan_publishes_a_plan_approved_event(data_dir: Path) -> None:
    subscriber = Subscriber(MQTT_URL)
    engine = Engine(make_settings(data_dir, JAMEY_MQTT_URL=MQTT_URL, JAMEY_APPROVALS="backup-delete"))
    try:
        wait_until(lambda: engine.events.connected, 10, "the publisher to connect to Mosquitto", every=0.02)
        backup = engine.vault.create()
        planned = plan(engine, "backup-delete", {"backup_id": backup.id}, Actor.cli())
        approve(engine, planned.id, Actor("bob", ("admin",), "bobkey"), "old enough")
        while True:
            topic, body = subscriber.next(timeout=30)
            if body.get("plan_id") == planned.id:
                break
        assert topic == "jamey/events/plan_approved"
        assert body["decided_by"] == "bob" and body["comment"] == "old enough"
        assert body["action"] == "backup-delete" and body["planned_by"] == "cli"
    finally:
        engine.close()
        subscriber.close()
