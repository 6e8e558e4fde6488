"""Alerts: the Alerts page with a month of history, and the Alertmanager webhook receiver.

- Page: the Alerts page rendered with Streamlit's AppTest (median of 5 script runs, signed in,
  history range 30 days) with 10,000 notifications over 30 days in SQLite and a real
  Alertmanager (the project's config) holding 20 alerts and 50 silences; a real, empty
  Prometheus answers the alerts query. Baseline: the sign-in page. Target (issue 12): < 1.5 s.
- Webhook: ``POST /alertmanager/webhook`` with a 100-alert payload (version 4, new alerts each
  time) through the whole app in process (key check, rate limit, parse, one transaction on
  SQLite): p50 and p99 of 200 posts; the same payload again (every row a duplicate); baseline:
  parse and store alone. Target: p99 < 50 ms.
Run alone: ``.venv/bin/python -m bench.bench_alerts [--quick]``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from bench.common import Row, cli, percentile, row

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TARGET_PAGE = 1.5
TARGET_P99_MS = 50.0


def _seed_history(db: Any, rows: int, days: int) -> None:
    import sqlalchemy as sa

    from jamey_engine.durations import utcnow
    from jamey_engine.models import AlertNotification
    from jamey_engine.observability.alert_history import Notification, store_notifications

    rng = random.Random(12)
    now = utcnow()
    batch = []
    for index in range(rows // 2):
        name = f"JameyBench{index % 12}"
        labels = {"alertname": name, "severity": ("warning", "critical")[index % 2], "layer": "working"}
        start = now - timedelta(seconds=rng.uniform(3600, days * 86400))
        end = start + timedelta(minutes=rng.uniform(1, 180))
        fingerprint = f"{index:016x}"
        batch.append(Notification(fingerprint, "firing", labels, {"summary": name}, start, None))
        batch.append(Notification(fingerprint, "resolved", labels, {"summary": name}, start, end))
    for chunk in range(0, len(batch), 2000):
        store_notifications(db, batch[chunk : chunk + 2000])
    table = cast(sa.Table, AlertNotification.__table__)
    with db.begin() as conn:  # received when they happened, not now
        conn.execute(
            sa.update(table).values(received_at=sa.func.coalesce(table.c.ends_at, table.c.starts_at))
        )


def _page_rows(quick: bool) -> list[Row]:
    import amserver
    import promserver
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from jamey_engine.observability.alertmanager import AlertmanagerClient, Matcher
    from workbench_ui.session import WorkbenchSession

    rows_wanted = 1000 if quick else 10_000
    repeat = 1 if quick else 5
    work = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    am = amserver.start_alertmanager(work / "am")
    tsdb = work / "tsdb"
    tsdb.mkdir()
    prom_url, prom = promserver.launch_prometheus(work, "global:\n  scrape_interval: 1m\n", tsdb)
    data = work / "data"
    data.mkdir()
    os.environ.update(
        JAMEY_DATA_DIR=str(data), ALERTMANAGER_URL=am.url, PROMETHEUS_URL=prom_url,
        JAMEY_SERVICE_URL="http://127.0.0.1:9",
    )  # fmt: skip
    try:
        am.post_alerts(*(amserver.alert(f"JameyBench{i}", "warning", layer="working") for i in range(20)))
        client = AlertmanagerClient(am.url)
        amserver.wait_until(lambda: len(client.alerts()) >= 20, what="20 alerts")
        for index in range(50):
            client.post_silence(
                [Matcher("alertname", f"JameyBench{index % 20}"), Matcher("silence", str(index))],
                ends_at=_later(),
                created_by="bench", comment=f"bench silence {index}",
            )  # fmt: skip
        engine = Engine(Settings.from_env())
        admin = engine.keys.create("bench-admin", scopes=("admin",), actor="bench").key
        _seed_history(engine.db, rows_wanted, 30)
        stored = engine.db.count_rows()["alert_notifications"]
        engine.close()
        session = WorkbenchSession.sign_in(Engine(Settings.from_env()).keys, admin, timedelta(hours=1))

        def tab(page: str) -> Any:
            at = AppTest.from_file(APP, default_timeout=120)
            at.session_state["workbench_session"] = session
            if page != "signin":
                at.switch_page(f"pages/{page}.py")
            at.run()
            return at

        signin = tab("signin")
        alerts = tab("alerts")
        alerts.selectbox(key="history_days").set_value(30).run()
        if alerts.exception or alerts.error:
            raise RuntimeError(f"alerts page: {alerts.exception} {[e.value for e in alerts.error]}")
        if len(alerts.get("plotly_chart")) != 1:
            raise RuntimeError("no timeline drawn")

        def timed(at: Any) -> float:
            start = time.perf_counter()
            at.run()
            return time.perf_counter() - start

        page = statistics.median(timed(alerts) for _ in range(repeat))
        floor = statistics.median(timed(signin) for _ in range(repeat))
        st.cache_data.clear()
        st.cache_resource.clear()
        return [
            row(
                f"alerts page, {stored:,} notifications over 30 days, {len(client.silences())} silences, 20 alerts",
                "render s (median of 5)", page, baseline=floor, target=f"< {TARGET_PAGE} s",
                met=page < TARGET_PAGE, higher_is_better=False,
            )
        ]  # fmt: skip
    finally:
        am.stop()
        prom.terminate()
        prom.wait(timeout=20)


def _later() -> Any:
    from jamey_engine.durations import utcnow

    return utcnow() + timedelta(days=1)


def _payload(offset: int, size: int) -> dict[str, Any]:
    return {
        "version": "4", "status": "firing", "receiver": "warning", "groupKey": "bench",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": f"JameyBench{i % 7}", "severity": "warning", "layer": "working", "n": str(i)},
                "annotations": {"summary": "bench", "description": "a benchmark alert"},
                "startsAt": "2026-12-01T06:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph", "fingerprint": f"{offset + i:016x}",
            }
            for i in range(size)
        ],
    }  # fmt: skip


def _webhook_rows(quick: bool) -> list[Row]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from jamey_engine.observability.alert_history import parse_webhook, store_notifications
    from jamey_engine.service import create_app

    posts = 20 if quick else 200
    data = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    engine = Engine(
        Settings.from_env({"JAMEY_DATA_DIR": str(data), "JAMEY_GLOBAL_RATE_LIMIT": "1000000/minute"})
    )
    key = engine.keys.create("hook", scopes=("alerts:write",), rate_limit="100000/second", actor="bench").key
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [json.dumps(_payload(n * 100, 100)).encode() for n in range(posts + 10)]
    latencies, repeats = [], []
    with TestClient(create_app(engine)) as client:
        for n, body in enumerate(bodies):
            start = time.perf_counter()
            answer = client.post("/alertmanager/webhook", content=body, headers=headers)
            elapsed = time.perf_counter() - start
            if answer.status_code != 200:
                raise RuntimeError(answer.text)
            if n >= 10:  # the first posts warm up the key cache and the connection pool
                latencies.append(elapsed * 1000)
        for body in bodies[10 : 10 + posts // 2]:
            start = time.perf_counter()
            client.post("/alertmanager/webhook", content=body, headers=headers)
            repeats.append((time.perf_counter() - start) * 1000)
    direct = []
    for n in range(posts):
        payload = _payload(10_000_000 + n * 100, 100)
        start = time.perf_counter()
        store_notifications(engine.db, parse_webhook(payload))
        direct.append((time.perf_counter() - start) * 1000)
    engine.close()
    p99 = percentile(latencies, 99)
    return [
        row("webhook, 100-alert payload, SQLite", "p99 ms", p99, baseline=percentile(direct, 99),
            target=f"< {TARGET_P99_MS:g} ms", met=p99 < TARGET_P99_MS, higher_is_better=False),
        row("webhook, 100-alert payload, SQLite", "p50 ms", statistics.median(latencies),
            baseline=statistics.median(direct), higher_is_better=False),
        row("webhook, same payload again (all duplicates)", "p99 ms", percentile(repeats, 99), higher_is_better=False),
    ]  # fmt: skip


def main(quick: bool = False) -> list[Row]:
    """The page render and the webhook latency rows."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    return _webhook_rows(quick) + _page_rows(quick)


if __name__ == "__main__":
    cli(main)
