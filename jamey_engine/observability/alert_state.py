"""The alerts now: Prometheus' firing and pending alerts with their Alertmanager state.

:func:`current_alerts` joins the two sources (Prometheus knows pending alerts, Alertmanager
knows silences and inhibitions) into :class:`AlertView` rows that say, in words, who silenced
an alert until when and which alert inhibits it; :func:`grouped` groups them as Alertmanager
groups its notifications. The Alerts page, ``jamey alerts list`` and the notebooks show these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from jamey_engine.observability.alertmanager import Alert, AlertGroup, Silence

PENDING_GROUP = "from Prometheus, not (yet) in Alertmanager"


@dataclass(frozen=True)
class AlertView:
    """One alert as the operator sees it.

    ``state`` is Prometheus' (``firing``/``pending``; ``firing`` for an alert only Alertmanager
    knows); ``am_state`` is Alertmanager's (``active``, ``suppressed``, ``unprocessed``, or ``""``
    when Alertmanager does not hold it). ``silenced`` and ``inhibited`` say by whom, until when
    and by what, in words.
    """

    alertname: str
    severity: str
    state: str
    am_state: str
    labels: dict[str, str]
    annotations: dict[str, str]
    since: datetime | None
    fingerprint: str = ""
    silenced: tuple[str, ...] = ()
    inhibited: tuple[str, ...] = ()
    silence_ids: tuple[str, ...] = field(default=(), repr=False)

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")

    @property
    def status_text(self) -> str:
        """``active``, ``silenced by … until …``, ``inhibited by …`` or ``pending``."""
        if self.silenced:
            return "silenced " + "; ".join(self.silenced)
        if self.inhibited:
            return "inhibited " + "; ".join(self.inhibited)
        return self.am_state or self.state

    def as_dict(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "severity": self.severity,
            "state": self.state,
            "alertmanager_state": self.am_state,
            "status": self.status_text,
            "since": self.since.isoformat() if self.since else None,
            "summary": self.summary,
            "labels": self.labels,
            "fingerprint": self.fingerprint,
            "silenced_by": list(self.silence_ids),
        }


def _covers(outer: Mapping[str, str], inner: Mapping[str, str]) -> bool:
    return all(outer.get(name) == value for name, value in inner.items())


def describe_silence(silence: Silence) -> str:
    """``by alice until 2026-12-01 08:00 UTC (abc123…)``."""
    return (
        f"by {silence.created_by or 'unknown'} until {silence.ends_at:%Y-%m-%d %H:%M} UTC ({silence.id[:8]})"
    )


def view_of(alert: Alert, silences: Mapping[str, Silence], by_fingerprint: Mapping[str, Alert]) -> AlertView:
    """An Alertmanager alert in words (its silences and inhibitors looked up)."""
    silenced = tuple(
        describe_silence(silences[sid]) if sid in silences else f"by silence {sid[:8]}"
        for sid in alert.silenced_by
    )
    inhibited = tuple(
        f"by {by_fingerprint[fp].alertname} ({by_fingerprint[fp].severity})"
        if fp in by_fingerprint
        else f"by alert {fp}"
        for fp in alert.inhibited_by
    )
    return AlertView(
        alertname=alert.alertname,
        severity=alert.severity,
        state="firing",
        am_state=alert.state,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        since=alert.starts_at,
        fingerprint=alert.fingerprint,
        silenced=silenced,
        inhibited=inhibited,
        silence_ids=tuple(alert.silenced_by),
    )


def current_alerts(
    prometheus_alerts: pd.DataFrame | None, am_alerts: Sequence[Alert], silences: Sequence[Silence]
) -> list[AlertView]:
    """Every alert Alertmanager holds (in words) plus Prometheus' pending alerts, firing first.

    ``prometheus_alerts`` is ``PromQuery.alerts()`` (None when Prometheus could not be asked):
    its firing alerts are matched to Alertmanager's by labels, its pending ones added as such.
    """
    by_id = {s.id: s for s in silences}
    by_fingerprint = {a.fingerprint: a for a in am_alerts}
    views = [view_of(alert, by_id, by_fingerprint) for alert in am_alerts]
    if prometheus_alerts is not None and not prometheus_alerts.empty:
        for row in prometheus_alerts.itertuples(index=False):
            labels = {str(k): str(v) for k, v in dict(row.labels).items()}
            if any(_covers(view.labels, labels) for view in views):
                continue  # Alertmanager holds it: its view says more
            since = None if pd.isna(row.active_at) else row.active_at.floor("us").to_pydatetime()
            views.append(
                AlertView(
                    alertname=str(row.alertname),
                    severity=str(row.severity),
                    state=str(row.state),
                    am_state="",
                    labels=labels,
                    annotations={str(k): str(v) for k, v in dict(row.annotations).items()},
                    since=since,
                )
            )
    order = {"firing": 0, "pending": 1}
    return sorted(views, key=lambda v: (order.get(v.state, 2), v.alertname, v.severity, v.fingerprint))


def grouped(views: Sequence[AlertView], groups: Sequence[AlertGroup]) -> list[tuple[str, list[AlertView]]]:
    """The views grouped as Alertmanager groups them: (a title naming the group's labels and
    receiver, its views); the alerts only Prometheus knows (pending, or Alertmanager not asked) last, as one group."""
    by_fingerprint = {v.fingerprint: v for v in views if v.fingerprint}
    result: list[tuple[str, list[AlertView]]] = []
    placed: set[str] = set()
    for group in groups:
        members = [by_fingerprint[a.fingerprint] for a in group.alerts if a.fingerprint in by_fingerprint]
        members = [m for m in members if m.fingerprint not in placed]
        if not members:
            continue
        placed.update(m.fingerprint for m in members)
        labels = ", ".join(f"{k}={v}" for k, v in sorted(group.labels.items())) or "all alerts"
        result.append((f"{labels} → {group.receiver}", members))
    rest = [v for v in views if v.fingerprint and v.fingerprint not in placed]
    if rest:
        result.append(("not in a notification group", rest))
    pending = [v for v in views if not v.fingerprint]
    if pending:
        result.append((PENDING_GROUP, pending))
    return result
