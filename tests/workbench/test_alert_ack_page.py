"""The Acknowledge button on the Alerts page, against a real Alertmanager: the acknowledgement
(who, when, comment) shows on the alert and in the history, and ends when the alert resolves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from amserver import AmServer, alert, start_alertmanager
from helpers import wait_until
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_history import Notification, store_notifications
from jamey_engine.observability.alertmanager import AlertmanagerClient

from .conftest import open_page, texts


def acks_table(at: AppTest) -> pd.DataFrame:
    """The history's acknowledgements table (the one with a "by" column)."""
    (table,) = [frame.value for frame in at.dataframe if "by" in frame.value.columns]
    return table


@pytest.fixture
def am(tmp_path: Path, wb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AmServer]:
    server = start_alertmanager(tmp_path / "am")
    monkeypatch.setenv("ALERTMANAGER_URL", server.url)
    yield server
    server.stop()


def test_an_alert_is_acknowledged_from_the_page_until_it_resolves(
    am: AmServer, admin_app: AppTest, engine: Engine
) -> None:
    am.post_alerts(alert("JameyBackupFailed", "critical"))
    held = wait_until(
        lambda: AlertmanagerClient(am.url).alerts(), message="Alertmanager holds the alert", every=0.2
    )
    target = held[0]
    assert target.starts_at is not None
    delivered = Notification(target.fingerprint, "firing", target.labels, {}, target.starts_at, None)
    store_notifications(engine.db, [delivered])  # what the webhook stores

    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    assert "acknowledged" not in texts(admin_app)
    admin_app.text_input(key=f"ack_comment_{target.fingerprint}").input("rerunning the backup").run()
    admin_app.button(key=f"ack_{target.fingerprint}").click().run()
    assert not admin_app.exception, admin_app.exception
    open_page(admin_app, "alerts")
    page = texts(admin_app)
    assert ":green-badge[acknowledged] by **ops-admin** at " in page and ": rerunning the backup" in page
    assert not any(b.key == f"ack_{target.fingerprint}" for b in admin_app.button)
    assert len(acks_table(admin_app)) == 1

    resolution = Notification(target.fingerprint, "resolved", target.labels, {}, target.starts_at, utcnow())
    store_notifications(engine.db, [resolution])
    open_page(admin_app, "alerts")
    assert ":green-badge[acknowledged]" not in texts(admin_app)
    acks = acks_table(admin_app)
    assert acks["by"].tolist() == ["ops-admin"] and acks["ended (resolved)"].notna().all()
