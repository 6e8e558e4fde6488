"""The Alertmanager client against a real Alertmanager 0.25 with the project's config:
silences created, listed and expired (checked with amtool too), a silenced alert shows as
suppressed, groups and status, and the three distinct failures."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from amserver import AmServer, alert, start_alertmanager
from helpers import closed_port, wait_until
from promserver import require_binary

from jamey_engine import oplog
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput, NotFound
from jamey_engine.observability.alertmanager import (
    AlertmanagerClient,
    AlertmanagerRefused,
    AlertmanagerUnreachable,
    EmptyAnswer,
    Matcher,
    matchers_from_labels,
    matching_alerts,
    parse_matcher,
    parse_matchers,
)
from jamey_engine.observability.silences import create_silence, expire_silence


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AmServer]:
    server = start_alertmanager(tmp_path_factory.mktemp("alertmanager"))
    yield server
    server.stop()


@pytest.fixture
def client(am: AmServer) -> Iterator[AlertmanagerClient]:
    with AlertmanagerClient(am.url, timeout=5) as c:
        yield c


def amtool_silences(am: AmServer) -> list[dict[str, object]]:
    result = subprocess.run(
        [require_binary("amtool"), "silence", "query", "-o", "json", f"--alertmanager.url={am.url}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout or "[]"))


def test_a_silence_is_created_listed_seen_by_amtool_and_expired(
    am: AmServer, client: AlertmanagerClient, engine: Engine
) -> None:
    matchers = parse_matchers(["alertname=JameyBackupFailed", "layer=~sem.*"])
    silence_id = create_silence(
        client, engine.db, None, matchers, timedelta(hours=2), actor="alice", comment="restore running"
    )
    listed = {s.id: s for s in client.silences()}
    assert silence_id in listed
    made = listed[silence_id]
    assert made.state == "active"
    assert made.created_by == "alice" and made.comment == "restore running"
    assert [str(m) for m in made.matchers] == ["alertname=JameyBackupFailed", "layer=~sem.*"]
    assert timedelta(hours=1, minutes=59) < made.ends_at - made.starts_at <= timedelta(hours=2, seconds=5)
    by_amtool = {s["id"]: s for s in amtool_silences(am)}
    assert by_amtool[silence_id]["createdBy"] == "alice"

    expire_silence(client, engine.db, None, silence_id, actor="bob")
    assert silence_id not in {s.id for s in client.silences()}
    assert client.silence(silence_id).state == "expired"
    assert silence_id not in {s["id"] for s in amtool_silences(am)}
    logged = oplog.recent_operations(engine.db, kind="silence")
    assert [(op["actor"], op["status"]) for op in logged] == [("bob", "success"), ("alice", "success")]
    assert f"expired silence {silence_id}" == logged[0]["detail"]
    assert "restore running" in str(logged[1]["detail"])


def test_a_silenced_alert_shows_as_suppressed_by_that_silence(
    am: AmServer, client: AlertmanagerClient, engine: Engine
) -> None:
    am.post_alerts(alert("JameyTestSilenced", layer="episodic"), alert("JameyTestLoud"))
    alerts = wait_until(
        lambda: [a for a in client.alerts() if a.alertname.startswith("JameyTest")],
        message="alerts arrive",
        every=0.2,
    )
    target = next(a for a in alerts if a.alertname == "JameyTestSilenced")
    matchers = [Matcher("alertname", "JameyTestSilenced")]
    assert matching_alerts(alerts, matchers) == [target]
    silence_id = create_silence(
        client, engine.db, None, matchers, timedelta(minutes=30), actor="alice", comment="known"
    )
    silenced = wait_until(
        lambda: [
            a for a in client.alerts() if a.alertname == "JameyTestSilenced" and a.state == "suppressed"
        ],
        message="the alert is suppressed",
        every=0.2,
    )
    assert silenced[0].silenced_by == (silence_id,)
    loud = next(a for a in client.alerts() if a.alertname == "JameyTestLoud")
    assert loud.state == "active"
    groups = client.alert_groups()
    assert any(a.alertname == "JameyTestLoud" for g in groups for a in g.alerts)
    assert {g.receiver for g in groups} <= {"warning", "critical"}


def test_status_names_the_version(client: AlertmanagerClient) -> None:
    status = client.status()
    assert status.version.startswith("0.25")
    assert status.uptime is not None


def test_alertmanager_refuses_a_bad_silence_and_unknown_ids_are_not_found(
    client: AlertmanagerClient, engine: Engine
) -> None:
    with pytest.raises(AlertmanagerRefused, match="Alertmanager refused the request"):
        client.post_silence(
            [Matcher("alertname", "")], ends_at=utcnow() + timedelta(hours=1),
            created_by="alice", comment="a matcher that matches nothing",
        )  # fmt: skip
    with pytest.raises(NotFound, match="no silence"):
        client.silence("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidInput, match="not an Alertmanager silence id"):
        client.delete_silence("x; rm")
    failed = oplog.recent_operations(engine.db, kind="silence")
    assert failed == []  # the client alone records nothing


def test_create_silence_refuses_bad_input_before_asking(client: AlertmanagerClient, engine: Engine) -> None:
    matchers = [Matcher("alertname", "X")]
    with pytest.raises(InvalidInput, match="comment"):
        create_silence(client, engine.db, None, matchers, timedelta(hours=1), actor="a", comment="  ")
    with pytest.raises(InvalidInput, match="at most 30 days"):
        create_silence(client, engine.db, None, matchers, timedelta(days=31), actor="a", comment="c")
    with pytest.raises(InvalidInput, match="NAME=VALUE"):
        parse_matcher("just-a-word")
    with pytest.raises(InvalidInput, match="match everything"):
        parse_matchers(["alertname=~.*"])
    assert parse_matcher('severity!="warning"') == Matcher("severity", "warning", is_equal=False)
    assert [str(m) for m in matchers_from_labels({"b": "2", "a": "1"})] == ["a=1", "b=2"]


def test_unreachable_is_told_apart_and_names_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with AlertmanagerClient(url, timeout=2) as client, pytest.raises(AlertmanagerUnreachable) as err:
        client.silences()
    assert err.value.message.startswith(f"Alertmanager unreachable at {url} (connection refused")
    assert "make run" in err.value.message


class _Odd(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"" if self.path.startswith("/api/v2/silences") else b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_empty_answer_and_a_foreign_answer_are_told_apart() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with AlertmanagerClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=5) as client:
            with pytest.raises(EmptyAnswer, match="gave an empty answer"):
                client.silences()
            with pytest.raises(AlertmanagerUnreachable, match="not Alertmanager's API"):
                client.alerts()
    finally:
        server.shutdown()
        server.server_close()


def test_a_silent_alertmanager_times_out_into_a_one_line_error() -> None:
    # A listening socket nobody reads: the connection opens and the answer never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with AlertmanagerClient(url, timeout=0.3) as client, pytest.raises(AlertmanagerUnreachable) as err:
            client.alerts()
    assert err.value.message.startswith(f"Alertmanager unreachable at {url} (no answer within 0.3s)")


class _Failing(BaseHTTPRequestHandler):
    """An Alertmanager whose every answer is a 503 (overloaded, cluster not settled)."""

    def _fail(self) -> None:
        body = b"cluster not ready\n"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_5xx_is_unreachable_naming_the_status_and_a_failed_silence_is_recorded(engine: Engine) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with AlertmanagerClient(url, timeout=5) as client:
            with pytest.raises(AlertmanagerUnreachable, match=r"\(HTTP 503: cluster not ready\)"):
                client.silences()
            with pytest.raises(AlertmanagerUnreachable, match="HTTP 503"):
                create_silence(
                    client, engine.db, None, [parse_matcher("alertname=JameyBackupFailed")],
                    timedelta(hours=1), actor="alice", comment="restore running",
                )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    [row] = oplog.recent_operations(engine.db, kind="silence")
    assert row["status"] == "failure" and row["actor"] == "alice"
    assert str(row["detail"]).startswith(
        f"silence alertname=JameyBackupFailed refused: Alertmanager unreachable at {url} (HTTP 503"
    )


def test_the_credentials_never_reach_the_rendered_config(tmp_path: Path, am: AmServer) -> None:
    text = am.config.read_text()
    assert "credentials_file" in text and "jmy_none" not in text


def test_an_inhibited_alert_says_by_what_and_groups_follow_alertmanager(
    am: AmServer, client: AlertmanagerClient
) -> None:
    from jamey_engine.observability.alert_state import current_alerts, grouped

    am.post_alerts(alert("JameyTestInhibit", "warning"), alert("JameyTestInhibit", "critical"))

    def inhibited() -> list[object]:
        views = current_alerts(None, client.alerts(), client.silences())
        return [v for v in views if v.alertname == "JameyTestInhibit" and v.inhibited]

    (view,) = wait_until(inhibited, message="the warning is inhibited", every=0.2)
    assert view.severity == "warning" and view.inhibited == ("by JameyTestInhibit (critical)",)
    assert view.status_text == "inhibited by JameyTestInhibit (critical)"
    views = current_alerts(None, client.alerts(), client.silences())
    titles = [title for title, _members in grouped(views, client.alert_groups())]
    assert any(title.startswith("alertname=JameyTestInhibit → ") for title in titles), titles
