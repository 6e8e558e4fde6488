"""The overview (health, headline numbers, firing alerts) and the alerts page, against a real
Prometheus with data, a live health endpoint, and both of them down."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import listening_socket, wait_for_port, wait_until
from promserver import PromServer
from streamlit.testing.v1 import AppTest

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.observability import promql
from jamey_engine.runbooks.alert_guides import GUIDES
from jamey_engine.runbooks.links import ALERT_LINKS
from workbench_ui import charts

from .conftest import open_page, texts


@pytest.fixture
def healthy_service(wb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real Jamey service (uvicorn in a thread) on the app's data dir."""
    import uvicorn

    from jamey_engine.service.app import create_app

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(wb_env)}))
    sock = listening_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for_port(port)
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("JAMEY_SERVICE_URL", url)
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    engine.close()


def wait_for_alert(server: PromServer, name: str, timeout: float = 30) -> None:
    wait_until(
        lambda: server.query(f'ALERTS{{alertname="{name}"}}'), timeout, f"{name} pending or firing", every=0.5
    )


def test_overview_shows_health_and_headline_numbers_colored(
    prom_env: PromServer, healthy_service: str, admin_app: AppTest
) -> None:
    open_page(admin_app, "overview")
    assert not admin_app.exception, admin_app.exception
    assert not admin_app.error, [e.value for e in admin_app.error]
    assert admin_app.success[0].value == f"Service healthy at {healthy_service}/health (HTTP 200, status ok)."
    page = texts(admin_app)
    cards = [m.value for m in admin_app.markdown if m.value.startswith("### ")]
    assert len(cards) == 8, cards  # four headline numbers, then four cards of the backups off-site
    assert cards[0] == "### :red[8.00%]", "8% errors is over the 5% threshold"
    assert cards[1] == "### :green[750 ms]", "p95 0.75 s is under 80% of the 1 s threshold"
    # The scenario backs up daily at 03:00 UTC, so the age (and its color) depends on the hour.
    age = time.time() - prom_env.scenario.last_backup(time.time())
    color = "green" if age < promql.BACKUP_AGE_THRESHOLD * charts.WARNING_FRACTION else "orange"
    assert re.fullmatch(rf"### :{color}\[\d+\.\d (h|min) ago\]", cards[2]), (cards[2], age)
    # 2.x GiB in all, colored by the largest layer (semantic, ~850 MiB: over 80% of 1 GiB)
    assert re.fullmatch(r"### :orange\[2\.\d GiB\]", cards[3]), cards[3]
    assert re.search(r"warning · largest layer semantic 8\d\d\.\d MiB; alert at 1.0 GiB per layer", page)
    assert "critical · alert at 5.00%" in page


def alert_states(server: PromServer) -> tuple[set[tuple[str, str]], int]:
    """Prometheus' own answer: the firing (alertname, severity) pairs, and how many are pending."""
    with urllib.request.urlopen(f"{server.url}/api/v1/alerts", timeout=10) as response:  # noqa: S310
        alerts = json.load(response)["data"]["alerts"]
    firing = {(a["labels"]["alertname"], a["labels"]["severity"]) for a in alerts if a["state"] == "firing"}
    return firing, sum(1 for a in alerts if a["state"] == "pending")


def test_overview_lists_exactly_the_alerts_prometheus_says_are_firing(
    prom_env: PromServer, admin_app: AppTest
) -> None:
    wait_for_alert(prom_env, "JameyHighErrorRate")  # the scenario's 8% errors: pending, then firing
    for _ in range(3):  # an alert may turn from pending to firing while the page renders
        before = alert_states(prom_env)
        open_page(admin_app, "overview")
        if alert_states(prom_env) == before:
            break
    else:
        raise AssertionError("the alerts kept changing while the overview rendered")
    assert not admin_app.exception, admin_app.exception
    firing, pending = before
    if firing:
        table = admin_app.dataframe[0]  # the Installation findings follow it
        shown = {(row.alertname, row.severity) for row in table.value.itertuples()}
        assert shown == firing
        # times as every page shows them, never raw ISO text with +00:00
        assert all(
            re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC", at) for at in table.value["active since"]
        )
    else:
        # The only table left is the Installation findings (jamey doctor), never an alerts one.
        assert all("alertname" not in df.value.columns for df in admin_app.dataframe), (
            "nothing fires, so no table"
        )
        expected = "No alert is firing." + (f" {pending} pending (see Alerts)." if pending else "")
        assert expected in [s.value for s in admin_app.success], texts(admin_app)
        assert pending > 0, "the scenario's error rate is over the threshold, so its alert is pending"


@pytest.mark.usefixtures("wb_env")
def test_overview_with_everything_down_says_so_and_still_renders(admin_app: AppTest) -> None:
    open_page(admin_app, "overview")
    assert not admin_app.exception, admin_app.exception
    errors = [e.value for e in admin_app.error]
    assert errors[0].startswith("Service unhealthy: cannot reach http://127.0.0.1:")
    assert errors[0].count("http://") == 1, "the URL is said once"
    assert "jamey serve" in errors[0]
    assert sum("Prometheus unreachable at" in e for e in errors) == 2, errors  # headline and alerts
    assert [s.value for s in admin_app.subheader] == [
        "Headline numbers",
        "Backups off-site",
        "Firing alerts",
        "Installation",
    ]


def test_alerts_page_shows_labels_annotations_and_links(prom_env: PromServer, admin_app: AppTest) -> None:
    wait_for_alert(prom_env, "JameyHighErrorRate")
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    page = texts(admin_app)
    assert "**JameyHighErrorRate** :orange-badge[warning] :gray-badge[" in page
    assert re.search(r"(pending|firing) since 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC\]", page)
    assert "8% of Jamey API requests fail with 5xx" in page
    guide = GUIDES[ALERT_LINKS["JameyHighErrorRate"].guide]
    assert guide.text in page and guide.silence in page, "the alert's guide opens right there"
    assert "[JameyHighErrorRate in the docs](http://127.0.0.1:8000/alerts/JameyHighErrorRate/)" in page
    links = admin_app.get("page_link")
    assert any(
        "dashboards" in link.proto.page and "chart=error_rate" in link.proto.query_string for link in links
    ), [(link.proto.page, link.proto.query_string) for link in links]
    labels = [json.loads(j.proto.body) for j in admin_app.json]
    assert any(
        d["labels"].get("alertname") == "JameyHighErrorRate" and d["labels"]["job"] == "jamey" for d in labels
    )


@pytest.mark.usefixtures("wb_env")
def test_alerts_page_with_prometheus_down_says_how_to_start_it(admin_app: AppTest) -> None:
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    errors = [e.value for e in admin_app.error]
    assert len(errors) == 2, errors
    assert "Prometheus unreachable" in errors[0]
    assert errors[1].startswith("Alertmanager unreachable at http://127.0.0.1:")
