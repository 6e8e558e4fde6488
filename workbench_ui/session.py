"""The workbench's session and page logic that needs no Streamlit: sign-in, idle expiry,
per-action key checks, time ranges for the dashboards and the service health probe.

The Streamlit pages (``app.py``, ``pages/``) hold a :class:`WorkbenchSession` in their
session state and call :meth:`WorkbenchSession.authorize` before every admin action, so a key
revoked or expired mid-session stops working at the next click, and the action is audited
with the key's name as its actor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from jamey_engine.durations import format_duration, parse_duration, parse_timestamp, utcnow
from jamey_engine.errors import Forbidden, InvalidInput, KeyRejected
from workbench_ui.charts import Unit

ADMIN_SCOPE = "admin"


class _Verified(Protocol):
    id: str
    name: str
    scopes: tuple[str, ...]


class KeyVerifier(Protocol):
    """What the session needs from :class:`jamey_engine.keys.KeyManager`."""

    def verify(self, plaintext: str) -> Any: ...


class SessionExpired(KeyRejected):
    """The workbench session was idle longer than ``JAMEY_WORKBENCH_IDLE_TIMEOUT``."""

    def __init__(self, idle_timeout: timedelta) -> None:
        super().__init__(
            "idle",
            f"Signed out after {format_duration(idle_timeout)} without activity; sign in again.",
        )


def _require_admin(verified: _Verified) -> None:
    if ADMIN_SCOPE not in tuple(verified.scopes):
        raise Forbidden(
            f"Key {verified.name!r} has scopes {', '.join(verified.scopes) or '(none)'}; the workbench needs "
            "an admin key (jamey keys create --name <name> --scope admin)."
        )


@dataclass
class WorkbenchSession:
    """One signed-in browser session. The plaintext key lives only in this object, in memory.

    ``actor`` is the key's name: every audited action taken through the workbench is
    recorded under it.
    """

    key: str = field(repr=False)
    key_id: str
    actor: str
    idle_timeout: timedelta
    signed_in_at: datetime
    last_active: datetime

    @classmethod
    def sign_in(
        cls, keys: KeyVerifier, plaintext: str, idle_timeout: timedelta, now: datetime | None = None
    ) -> WorkbenchSession:
        """Verify ``plaintext`` and start a session for it.

        Raises KeyRejected (missing, malformed, unknown, expired, revoked) when the key is not
        valid, and Forbidden when it is valid but lacks the admin scope.
        """
        plaintext = (plaintext or "").strip()
        if not plaintext:
            raise KeyRejected("missing", "Enter an admin API key to sign in.")
        verified = keys.verify(plaintext)
        _require_admin(verified)
        moment = now or utcnow()
        return cls(
            key=plaintext,
            key_id=str(verified.id),
            actor=str(verified.name),
            idle_timeout=idle_timeout,
            signed_in_at=moment,
            last_active=moment,
        )

    def expired(self, now: datetime | None = None) -> bool:
        """True once the session has been idle for longer than its idle timeout."""
        return (now or utcnow()) - self.last_active > self.idle_timeout

    def touch(self, now: datetime | None = None) -> None:
        """Record activity. Raises SessionExpired if the session had already gone idle."""
        moment = now or utcnow()
        if self.expired(moment):
            raise SessionExpired(self.idle_timeout)
        self.last_active = moment

    def check(self, keys: KeyVerifier, now: datetime | None = None) -> str:
        """Check the session and its key without counting as activity (an auto-refresh);
        return the actor name. Raises like :meth:`authorize`."""
        if self.expired(now or utcnow()):
            raise SessionExpired(self.idle_timeout)
        verified = keys.verify(self.key)
        _require_admin(verified)
        self.actor = str(verified.name)
        return self.actor

    def authorize(self, keys: KeyVerifier, now: datetime | None = None) -> str:
        """Check the session and the key again before an admin action (or a page view), count
        it as activity, and return the actor name.

        Raises SessionExpired when idle too long, KeyRejected when the key was revoked or has
        expired since sign-in, and Forbidden when it no longer has the admin scope.
        """
        moment = now or utcnow()
        actor = self.check(keys, moment)
        self.last_active = moment
        return actor


# --- time ranges of the dashboards -------------------------------------------------------

PRESETS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
DEFAULT_PRESET = "1h"
CUSTOM = "custom"
# Preset ranges end at "now" rounded down to this, so repeated renders share cached queries.
RANGE_ALIGNMENT_SECONDS = 10
MAX_RANGE = timedelta(days=90)


@dataclass(frozen=True)
class TimeRange:
    """A dashboard time range: a preset name (or ``custom``) and its aware-UTC bounds."""

    preset: str
    start: datetime
    end: datetime

    def query_params(self) -> dict[str, str]:
        """The URL query parameters that reproduce this range (for shareable links)."""
        if self.preset != CUSTOM:
            return {"range": self.preset}
        return {
            "range": CUSTOM,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": self.end.isoformat().replace("+00:00", "Z"),
        }


def _aligned(moment: datetime) -> datetime:
    seconds = int(moment.timestamp()) // RANGE_ALIGNMENT_SECONDS * RANGE_ALIGNMENT_SECONDS
    return datetime.fromtimestamp(seconds, tz=moment.tzinfo)


def resolve_range(
    preset: str | None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    now: datetime | None = None,
) -> TimeRange:
    """Turn URL parameters into a TimeRange.

    ``preset`` is one of PRESETS, ``custom`` (then ``start`` and ``end`` are ISO 8601
    timestamps), a duration such as ``3h`` (the last 3 hours), or empty for the default.
    Raises InvalidInput naming the parameter and value when the range is unusable.
    """
    moment = _aligned(now or utcnow())
    name = (preset or DEFAULT_PRESET).strip()
    if name in PRESETS:
        return TimeRange(name, moment - PRESETS[name], moment)
    if name == CUSTOM:
        if start is None or start == "" or end is None or end == "":
            raise InvalidInput("A custom range needs both a start and an end time.")
        begin = parse_timestamp(start, field="start")
        finish = parse_timestamp(end, field="end")
        if finish <= begin:
            raise InvalidInput(f"end {finish.isoformat()} must be after start {begin.isoformat()}.")
        if finish - begin > MAX_RANGE:
            raise InvalidInput(
                f"range of {format_duration(finish - begin)} is longer than the longest allowed, "
                f"{format_duration(MAX_RANGE)}."
            )
        return TimeRange(CUSTOM, begin, finish)
    try:
        span = parse_duration(name, field="range")
    except InvalidInput:
        raise InvalidInput(
            f"range {name!r} is not one of {', '.join(PRESETS)} or custom, nor a duration such as 3h."
        ) from None
    if span > MAX_RANGE:
        raise InvalidInput(
            f"range {name!r} is longer than the longest allowed, {format_duration(MAX_RANGE)}."
        )
    return TimeRange(name, moment - span, moment)


# --- the service health probe ------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """The result of probing the service's /health endpoint."""

    url: str
    ok: bool
    status_code: int | None
    detail: str
    body: dict[str, Any] | None = None


def check_health(service_url: str, timeout: float = 2.0) -> Health:
    """GET ``<service_url>/health`` with a short timeout. Never raises: failures come back as
    ``Health(ok=False, detail=...)`` saying what went wrong."""
    url = service_url.rstrip("/") + "/health"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.TimeoutException:
        return Health(url, False, None, f"no answer from {url} within {timeout:g}s")
    except httpx.HTTPError as err:
        return Health(
            url,
            False,
            None,
            f"cannot reach {url} ({type(err).__name__}); start the service with `jamey serve` or `make run`",
        )
    body: dict[str, Any] | None
    try:
        parsed = response.json()
        body = parsed if isinstance(parsed, dict) else {"body": parsed}
    except ValueError:
        body = None
    ok = response.status_code == 200
    status = str(body.get("status", "")) if body else ""
    if ok and status and status.lower() not in {"ok", "healthy", "up", "pass"}:
        ok = False
    failing = [
        f"{name.replace('_', ' ')} {check.get('detail', 'failing')}"
        for name, check in (body or {}).items()
        if isinstance(check, dict) and check.get("ok") is False
    ]
    detail = f"HTTP {response.status_code}" + (f", status {status}" if status else "")
    if failing:
        detail += f" ({'; '.join(failing)})"
    return Health(url, ok, response.status_code, detail, body)


# --- what the dashboards draw ------------------------------------------------------------


@dataclass(frozen=True)
class ChartSpec:
    """One dashboard chart: the ``PromQuery`` method (and query_link name) it draws, its
    title and unit, the label columns naming its series, and its alert threshold if any."""

    name: str
    title: str
    unit: Unit
    by: tuple[str, ...] | None = None
    threshold: float | None = None
    threshold_label: str | None = None
    stacked: bool = False
    series_name: str = "value"  # the legend entry of a series without labels


def chart_specs() -> tuple[ChartSpec, ...]:
    """The dashboard charts in display order, thresholds taken from the alert rules' constants."""
    from jamey_engine.observability import promql

    return (
        ChartSpec(
            "error_rate",
            "Error rate (5xx share of requests)",
            "ratio",
            threshold=promql.ERROR_RATE_THRESHOLD,
            threshold_label="error-rate alert threshold",
            series_name="5xx share",
        ),
        ChartSpec(
            "latency_quantiles",
            "Latency p50, p95, p99",
            "seconds",
            by=("quantile",),
            threshold=promql.P95_LATENCY_THRESHOLD,
            threshold_label="p95 latency alert threshold",
        ),
        ChartSpec("request_rate", "Request rate by status", "per_second", by=("status",)),
        ChartSpec("rate_limited", "Rate-limit rejections", "per_second"),
        ChartSpec("backup_counts", "Backups: successes and failures", "count"),
        ChartSpec("backup_duration", "Backup duration", "seconds", series_name="last backup's duration"),
        ChartSpec("backup_size", "Backup size", "bytes", series_name="last backup's size"),
        ChartSpec(
            "index_size",
            "Memory index size by layer",
            "bytes",
            by=("layer",),
            threshold=promql.INDEX_SIZE_THRESHOLD,
            threshold_label="per-layer index size alert threshold",
        ),
    )


_ALERT_CHARTS: dict[str, str] = {
    "JameyServiceDown": "request_rate",
    "JameyHighErrorRate": "error_rate",
    "JameyHighLatency": "latency_quantiles",
    "JameyRateLimitSurge": "rate_limited",
    "JameyMemoryIndexTooLarge": "index_size",
    "JameyBackupFailed": "backup_counts",
    "JameyBackupTooOld": "backup_counts",
    "JameyBackupNeverSucceeded": "backup_counts",
}
_ALERT_WORDS: tuple[tuple[str, str], ...] = (
    ("errorrate", "error_rate"),
    ("latency", "latency_quantiles"),
    ("ratelimit", "rate_limited"),
    ("backup", "backup_counts"),
    ("restore", "backup_counts"),
    ("index", "index_size"),
    ("request", "request_rate"),
)


def chart_for_alert(alertname: str, annotations: dict[str, Any] | None = None) -> str | None:
    """The dashboard chart that shows what an alert watches: the alert's ``dashboard``
    annotation when it names a chart, else a match on words in its name; None if none fits."""
    names = {spec.name for spec in chart_specs()}
    wanted = str((annotations or {}).get("dashboard", "")).strip()
    if wanted in names:
        return wanted
    if alertname in _ALERT_CHARTS:
        return _ALERT_CHARTS[alertname]
    flat = alertname.lower().replace("-", "").replace("_", "")
    for word, chart in _ALERT_WORDS:
        if word in flat:
            return chart
    return None


# --- runbooks ----------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def heading_slug(text: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to -."""
    kept = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return kept.replace(" ", "-")


def runbook_section(runbook_url: str, repo_root: Path) -> str | None:
    """The Markdown of the section a repository-relative runbook link points at
    (``README.md#runbook-high-error-rate``), or None when the link is not a Markdown file inside
    ``repo_root``, or names no such heading. Never reads outside ``repo_root``."""
    path_text, _, anchor = runbook_url.partition("#")
    if not path_text.endswith(".md") or "://" in path_text:
        return None
    root = repo_root.resolve()
    path = (root / path_text).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not anchor:
        return "\n".join(lines).strip() or None
    start: int | None = None
    level = 0
    in_code = False
    for number, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if not match:
            continue
        if start is None and heading_slug(match.group(2)) == anchor:
            start, level = number, len(match.group(1))
        elif start is not None and len(match.group(1)) <= level:
            return "\n".join(lines[start:number]).strip()
    return "\n".join(lines[start:]).strip() if start is not None else None
