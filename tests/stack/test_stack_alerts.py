"""`make run` delivers alerts out of the box: the stack creates the webhook's alerts:write key in
an owner-only credentials file, and its Alertmanager delivers to its service's webhook."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import httpx
from helpers import make_settings, wait_for_port, wait_until

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_history import history_frame

from .test_stack import KEY_PATTERN, ports, read_until, start_stack, stop

__all__ = ["ports"]


def _answers_200(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_ready(url: str, timeout: float = 30.0) -> None:
    wait_until(lambda: _answers_200(url), timeout, f"{url} to answer 200", every=0.3)


def wait_for_history(data_dir: Path, alertname: str, timeout: float) -> dict[str, object]:
    """The first stored notification of ``alertname`` (Alertmanager's group_wait is 30 s)."""
    engine = Engine(make_settings(data_dir))

    def stored() -> dict[str, object] | None:
        frame = history_frame(engine.db, utcnow() - timedelta(hours=1), alertname=alertname)
        return None if frame.empty else dict(frame.iloc[0])

    try:
        found: dict[str, object] = wait_until(stored, timeout, f"{alertname} delivered", every=1.0)
        return found
    finally:
        engine.close()


def test_alertmanager_delivers_to_the_webhook_with_an_owner_only_credentials_file(
    data_dir: Path, ports: dict[str, int]
) -> None:
    process = start_stack(data_dir, ports)
    try:
        banner = read_until(process, "Ctrl-C stops everything")
        credentials = data_dir / "stack" / "alertmanager-webhook.credentials"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        hook_key = credentials.read_text().strip()
        assert hook_key not in banner and len(KEY_PATTERN.findall(banner)) == 1, "only the admin key shows"
        wait_for_port(ports["service"], timeout=30)
        am = f"http://127.0.0.1:{ports['alertmanager']}"
        wait_until_ready(f"{am}/-/ready")
        posted = httpx.post(
            f"{am}/api/v2/alerts",
            json=[{"labels": {"alertname": "JameyStackSmoke", "severity": "warning"}}],
            timeout=5,
        )
        assert posted.status_code == 200, posted.text
        delivered = wait_for_history(data_dir, "JameyStackSmoke", timeout=120)
        assert delivered["receiver"] == "warning"
    finally:
        out = stop(process)
    assert hook_key not in out

    engine = Engine(make_settings(data_dir))
    try:
        hooks = [k for k in engine.keys.list() if k.name == "alertmanager-webhook"]
        assert [h.scopes for h in hooks] == [("alerts:write",)]
    finally:
        engine.close()

    again = start_stack(data_dir, ports)
    try:
        read_until(again, "Ctrl-C stops everything")
    finally:
        stop(again)
    assert credentials.read_text().strip() == hook_key, "a working webhook key is kept"
    for log in (data_dir / "stack").glob("*.log"):
        assert hook_key not in log.read_text(errors="replace"), log
