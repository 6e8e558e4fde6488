"""``jamey alerts``: what fires now (Prometheus and Alertmanager together), silences, history.

Alertmanager down (or Prometheus, for ``list``) is one line naming the URL and exit code 1.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta

import click

from jamey_engine.cli.common import emit_json, get_engine
from jamey_engine.durations import days_before, format_duration, parse_duration, utcnow
from jamey_engine.observability import alert_acks, alert_history
from jamey_engine.observability.alert_state import current_alerts
from jamey_engine.observability.alertmanager import (
    AlertmanagerClient,
    parse_matchers,
)
from jamey_engine.observability.promql import PromQuery
from jamey_engine.observability.silences import create_silence, expire_silence

ACTOR = "cli"


def _client() -> AlertmanagerClient:
    return AlertmanagerClient.from_settings(get_engine().settings)


@click.group("alerts")
def group() -> None:
    """Alerts now, Alertmanager silences, and the history of delivered notifications."""


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_alerts(as_json: bool) -> None:
    """Firing and pending alerts with their Alertmanager state (silenced, inhibited)."""
    settings = get_engine().settings
    with _client() as client, PromQuery.from_settings(settings) as prom:
        am_alerts = client.alerts()
        silences = client.silences()
        views = current_alerts(prom.alerts(), am_alerts, silences)
    acks = alert_acks.active_acknowledgements(get_engine().db)
    if as_json:
        emit_json([{**view.as_dict(), "acknowledgement": _ack_of(acks, view.fingerprint)} for view in views])
        return
    if not views:
        click.echo("no alert is firing or pending")
        return
    for view in views:
        since = f"{view.since:%Y-%m-%d %H:%M} UTC" if view.since else "?"
        acked = acks.get(view.fingerprint)
        by = f"  acknowledged by {acked.actor}: {acked.comment}" if acked else ""
        click.echo(
            f"{view.alertname:<28} {view.severity:<9} {view.state:<8} since {since}  {view.status_text}{by}"
        )


def _ack_of(acks: dict[str, alert_acks.Acknowledgement], fingerprint: str) -> dict[str, object] | None:
    found = acks.get(fingerprint)
    return found.to_dict() if found else None


@group.command("silence")
@click.option("--match", "matches", multiple=True, required=True, metavar="NAME=VALUE", help="Repeatable.")
@click.option("--for", "duration", required=True, metavar="DURATION", help="How long, e.g. 2h or 30m.")
@click.option("--comment", required=True, help="Why (required; shown in Alertmanager).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def silence(matches: tuple[str, ...], duration: str, comment: str, as_json: bool) -> None:
    """Silence the alerts the matchers catch; prints the silence id."""
    engine = get_engine()
    matchers = parse_matchers(matches)
    length = parse_duration(duration, field="--for")
    with _client() as client:
        silence_id = create_silence(
            client, engine.db, engine.events, matchers, length, actor=ACTOR, comment=comment
        )
    if as_json:
        emit_json({"id": silence_id, "matchers": [str(m) for m in matchers], "ends_at": utcnow() + length})
        return
    click.echo(silence_id)


@group.command("silences")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def silences(as_json: bool) -> None:
    """Active and pending silences."""
    with _client() as client:
        found = client.silences()
    if as_json:
        emit_json(
            [
                {
                    "id": s.id,
                    "state": s.state,
                    "matchers": [str(m) for m in s.matchers],
                    "starts_at": s.starts_at,
                    "ends_at": s.ends_at,
                    "created_by": s.created_by,
                    "comment": s.comment,
                }
                for s in found
            ]
        )
        return
    if not found:
        click.echo("no active or pending silence")
        return
    for s in found:
        click.echo(
            f"{s.id}  {s.state:<8} until {s.ends_at:%Y-%m-%d %H:%M} UTC  by {s.created_by}  "
            f"{s.matcher_text}  ({s.comment})"
        )


@group.command("expire")
@click.argument("silence_id")
def expire(silence_id: str) -> None:
    """Expire a silence now."""
    engine = get_engine()
    with _client() as client:
        expire_silence(client, engine.db, engine.events, silence_id, actor=ACTOR)
    click.echo(f"silence {silence_id} expired")


def _seconds(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format_duration(timedelta(seconds=round(value))) if value >= 1 else f"{value:.1f}s"


@group.command("history")
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history(days: int, as_json: bool) -> None:
    """Notifications Alertmanager delivered, and per alert how often it fired and how long it took to resolve."""
    db = get_engine().db
    since = days_before(utcnow(), days)
    frame = alert_history.history_frame(db, since)
    stats = alert_history.resolve_stats(alert_history.intervals(db, since))
    acks = alert_acks.acknowledgements(db, since)
    if as_json:
        rows = json.loads(frame.to_json(orient="records", date_format="iso"))
        per_alert = json.loads(stats.to_json(orient="records"))
        emit_json(
            {
                "days": days,
                "notifications": rows,
                "alerts": per_alert,
                "acknowledgements": [a.to_dict() for a in acks],
            }
        )
        return
    if frame.empty:
        click.echo(f"no alert notification in the last {days} days")
        return
    for row in frame.itertuples(index=False):
        click.echo(
            f"{row.received_at:%Y-%m-%d %H:%M:%S}  {row.status:<8} {row.alertname:<28} {row.severity:<9} "
            f"{row.layer or '':<11} since {row.starts_at:%Y-%m-%d %H:%M}"
        )
    for a in acks:
        state = f"ended {a.ended_at:%Y-%m-%d %H:%M}" if a.ended_at else "active"
        click.echo(
            f"{a.at:%Y-%m-%d %H:%M:%S}  acked    {a.alertname:<28} by {a.actor} ({state}): {a.comment}"
        )
    click.echo("")
    click.echo(f"{'alert':<28} {'fired':>5} {'resolved':>8} {'mean':>9} {'longest':>9}")
    for row in stats.itertuples(index=False):
        click.echo(
            f"{row.alertname:<28} {row.fired:>5} {row.resolved:>8} "
            f"{_seconds(row.mean_resolve_seconds):>9} {_seconds(row.longest_resolve_seconds):>9}"
        )


@group.command("show")
@click.argument("fingerprint")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(fingerprint: str, as_json: bool) -> None:
    """One alert (by Alertmanager's fingerprint, as `alerts history` lists it) with its
    diagnosis: the verdict, the evidence and the suggested runbook."""
    from jamey_engine.runbooks.alert_evidence import alert_evidence

    found = alert_evidence(get_engine().db, fingerprint)
    if as_json:
        emit_json(found.to_dict())
        return
    data = found.to_dict()
    click.echo(
        f"{found.alertname} ({found.severity or 'no severity'}) {found.status} since {found.starts_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    summary = found.annotations.get("summary")
    if summary:
        click.echo(summary)
    if found.run is None:
        click.echo("diagnosis: none started (JAMEY_AUTO_DIAGNOSE=0, or not yet)")
        return
    click.echo(f"diagnosis run {found.run.id}: {found.run.status}")
    if found.gathered_text:
        click.echo(found.gathered_text)
    if found.verdict:
        click.echo(f"verdict: {found.verdict}")
    for name, value in found.evidence.items():
        click.echo(f"  {name}: {value}")
    if data["suggested_runbook"]:
        click.echo(f"suggested runbook: {data['suggested_runbook']}")
    if found.run.error:
        click.echo(f"error: {found.run.error}")


@group.command("ack")
@click.argument("fingerprint")
@click.option("--comment", required=True, help="What you are doing about it (required).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ack(fingerprint: str, comment: str, as_json: bool) -> None:
    """Acknowledge the firing alert FINGERPRINT ("I'm on it", without silencing it); the
    acknowledgement ends when the alert resolves. The actor is cli:<your login name>."""
    import getpass

    from jamey_engine.observability.alert_acks import acknowledge

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    done = acknowledge(get_engine().db, fingerprint, comment, actor=f"{ACTOR}:{who}")
    if as_json:
        emit_json(done.to_dict())
        return
    click.echo(f"{done.alertname} ({done.fingerprint}) acknowledged by {done.actor}: {done.comment}")
