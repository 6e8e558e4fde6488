"""MQTT event publishing when the broker is away: what a caller pays per ``publish``.

``EventPublisher.publish`` only queues; paho's thread does the network. This measures the
caller's cost against a port where nothing listens and against a listener that never answers
(a broker that hangs). Target: 200 publishes in under 0.5 s (2.5 ms each), the figure the
test suite used to assert; the tests now check only that publish never blocks.
Run alone: ``.venv/bin/python -m bench.bench_events [--quick]``.
"""

from __future__ import annotations

import socket
import time

from bench.common import Row, cli, row
from jamey_engine.events import EventPublisher

TARGET_SECONDS_PER_200 = 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seconds_for(publisher: EventPublisher, count: int) -> float:
    start = time.perf_counter()
    for number in range(count):
        publisher.publish("prune", {"n": number})
    return time.perf_counter() - start


def main(quick: bool = False) -> list[Row]:
    """Seconds per 200 publishes against a refused port and against a silent listener."""
    count = 200 if quick else 2000
    rows: list[Row] = []
    refused = EventPublisher(f"mqtt://127.0.0.1:{_free_port()}", queue_size=count)
    try:
        per_200 = _seconds_for(refused, count) * 200 / count
    finally:
        refused.close()
    rows.append(
        row("events: broker down (refused)", "s per 200 publishes", per_200,
            target=f"< {TARGET_SECONDS_PER_200}", met=per_200 < TARGET_SECONDS_PER_200,
            higher_is_better=False)
    )  # fmt: skip
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hanging = EventPublisher(f"mqtt://127.0.0.1:{silent.getsockname()[1]}", queue_size=count)
        try:
            per_200 = _seconds_for(hanging, count) * 200 / count
        finally:
            hanging.close()
    rows.append(
        row("events: broker never answers", "s per 200 publishes", per_200,
            target=f"< {TARGET_SECONDS_PER_200}", met=per_200 < TARGET_SECONDS_PER_200,
            higher_is_better=False)
    )  # fmt: skip
    return rows


if __name__ == "__main__":
    cli(main)
