"""Alertmanager's v2 HTTP API: alerts and their groups with their state, silences, status.

``AlertmanagerClient`` sits beside the PromQL module and follows its policy:
- every request gives up after ALERTMANAGER_TIMEOUT seconds;
- failures are told apart: ``AlertmanagerUnreachable`` (nothing answered at the URL, or the
  answer was not Alertmanager's), ``AlertmanagerRefused`` (Alertmanager answered 4xx: a bad
  matcher, a silence in the past...), ``EmptyAnswer`` (a 2xx with no body where one was due) and
  ``NotFound`` (no such silence); never a requests or JSON error.

Silences made through Jamey always carry ``createdBy`` (the actor: a key's name, ``cli``) and a
comment; :func:`silences.create_silence` and :func:`silences.expire_silence` also record them in the operation log.
Matchers (parsing, matching, the guards on them) live in :mod:`.matchers`, re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from jamey_engine import ports
from jamey_engine.durations import as_utc, utcnow
from jamey_engine.errors import InvalidInput, NotFound, Unavailable
from jamey_engine.observability.matchers import Matcher as Matcher
from jamey_engine.observability.matchers import check_silence_matchers
from jamey_engine.observability.matchers import matchers_from_labels as matchers_from_labels
from jamey_engine.observability.matchers import matching_alerts as matching_alerts
from jamey_engine.observability.matchers import parse_matcher as parse_matcher
from jamey_engine.observability.matchers import parse_matchers as parse_matchers
from jamey_engine.redact import redact_url
from jamey_engine.urls import NoRedirectSession, excerpt

if TYPE_CHECKING:
    from jamey_engine.config import Settings

#: Longest silence Jamey creates (Alertmanager itself has no bound).
MAX_SILENCE = timedelta(days=30)
_SILENCE_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")


class AlertmanagerUnreachable(Unavailable):
    """Nothing answered at ALERTMANAGER_URL (refused, timed out), or it was not Alertmanager."""


class AlertmanagerRefused(InvalidInput):
    """Alertmanager answered but refused the request (HTTP 4xx); ``detail`` is its reason."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class EmptyAnswer(Unavailable):
    """Alertmanager answered 2xx with an empty body where it owes one (a proxy in the way?)."""


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager holds it, with its state.

    ``state`` is ``active``, ``suppressed`` or ``unprocessed``; ``silenced_by`` and
    ``inhibited_by`` list silence ids and the fingerprints of the alerts inhibiting it.
    """

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    starts_at: datetime | None
    ends_at: datetime | None
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()
    receivers: tuple[str, ...] = ()
    generator_url: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")


@dataclass(frozen=True)
class AlertGroup:
    """Alerts Alertmanager notifies together: its group labels, receiver and alerts."""

    labels: dict[str, str]
    receiver: str
    alerts: tuple[Alert, ...]


@dataclass(frozen=True)
class Silence:
    """One silence: ``state`` is ``active``, ``pending`` (starts later) or ``expired``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: str
    updated_at: datetime | None = None

    @property
    def matcher_text(self) -> str:
        return ", ".join(str(m) for m in self.matchers)


@dataclass(frozen=True)
class Status:
    """What ``/api/v2/status`` says: version, uptime start and cluster status."""

    version: str
    uptime: datetime | None
    cluster_status: str
    config_original: str = field(repr=False, default="")


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Go writes nanoseconds; Python reads at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.year <= 1:  # Go's zero time: "not set"
        return None
    return as_utc(parsed)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _alert(raw: Mapping[str, Any]) -> Alert:
    status = raw.get("status") or {}
    return Alert(
        fingerprint=str(raw.get("fingerprint", "")),
        labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (raw.get("annotations") or {}).items()},
        state=str(status.get("state", "")),
        starts_at=_time(raw.get("startsAt")),
        ends_at=_time(raw.get("endsAt")),
        silenced_by=tuple(status.get("silencedBy") or ()),
        inhibited_by=tuple(status.get("inhibitedBy") or ()),
        receivers=tuple(str(r.get("name", "")) for r in raw.get("receivers") or ()),
        generator_url=str(raw.get("generatorURL", "")),
    )


def _silence(raw: Mapping[str, Any]) -> Silence:
    starts, ends = _time(raw.get("startsAt")), _time(raw.get("endsAt"))
    if starts is None or ends is None:
        raise ValueError("a silence without its times")
    return Silence(
        id=str(raw["id"]),
        matchers=tuple(
            Matcher(
                str(m["name"]),
                str(m["value"]),
                is_regex=bool(m.get("isRegex")),
                is_equal=bool(m.get("isEqual", True)),
            )
            for m in raw.get("matchers") or ()
        ),
        starts_at=starts,
        ends_at=ends,
        created_by=str(raw.get("createdBy", "")),
        comment=str(raw.get("comment", "")),
        state=str((raw.get("status") or {}).get("state", "")),
        updated_at=_time(raw.get("updatedAt")),
    )


class AlertmanagerClient:
    """Alertmanager's v2 API at ``url``; every request gives up after ``timeout`` seconds.

    Every method raises AlertmanagerUnreachable, AlertmanagerRefused, EmptyAnswer or NotFound
    (see the module), never a client or JSON error.
    """

    def __init__(self, url: str = ports.local_url(ports.ALERTMANAGER), timeout: float = 10.0) -> None:
        if timeout <= 0:
            raise InvalidInput(f"timeout must be above zero, got {timeout!r}")
        self.url = url.rstrip("/")
        # What messages show: ALERTMANAGER_URL may carry user:password@.
        self.shown_url = redact_url(self.url)
        self.timeout = float(timeout)
        self._session = NoRedirectSession()

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertmanagerClient:
        """A client on ALERTMANAGER_URL with ALERTMANAGER_TIMEOUT."""
        return cls(settings.alertmanager_url, settings.alertmanager_timeout)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._session.close()

    def __enter__(self) -> AlertmanagerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------

    def status(self) -> Status:
        """Alertmanager's version, start time and cluster status."""
        raw = self._request("GET", "/api/v2/status")
        try:
            return Status(
                version=str((raw.get("versionInfo") or {}).get("version", "")),
                uptime=_time(raw.get("uptime")),
                cluster_status=str((raw.get("cluster") or {}).get("status", "")),
                config_original=str((raw.get("config") or {}).get("original", "")),
            )
        except AttributeError:
            raise self._not_alertmanager() from None

    def alerts(self) -> list[Alert]:
        """Every alert Alertmanager holds (active, silenced, inhibited), oldest first."""
        raw = self._request("GET", "/api/v2/alerts")
        alerts = self._parse_list(raw, _alert)
        return sorted(alerts, key=lambda a: (a.starts_at or datetime.min.replace(tzinfo=UTC), a.fingerprint))

    def alert_groups(self) -> list[AlertGroup]:
        """The alerts as Alertmanager groups them for notification (by route and group_by)."""
        raw = self._request("GET", "/api/v2/alerts/groups")

        def group(item: Mapping[str, Any]) -> AlertGroup:
            return AlertGroup(
                labels={str(k): str(v) for k, v in (item.get("labels") or {}).items()},
                receiver=str((item.get("receiver") or {}).get("name", "")),
                alerts=tuple(_alert(a) for a in item.get("alerts") or ()),
            )

        return self._parse_list(raw, group)

    def silences(self, *, include_expired: bool = False) -> list[Silence]:
        """Silences, active first then pending (then expired when asked), newest end first."""
        raw = self._request("GET", "/api/v2/silences")
        found = self._parse_list(raw, _silence)
        order = {"active": 0, "pending": 1, "expired": 2}
        kept = [s for s in found if include_expired or s.state != "expired"]
        return sorted(kept, key=lambda s: (order.get(s.state, 3), -s.ends_at.timestamp(), s.id))

    def silence(self, silence_id: str) -> Silence:
        """One silence by id; NotFound when Alertmanager has none such."""
        _check_id(silence_id)
        raw = self._request("GET", f"/api/v2/silence/{silence_id}", missing=f"no silence {silence_id!r}")
        try:
            return _silence(raw)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._not_alertmanager() from None

    # --- writing (see also create_silence / expire_silence, which also log) -------------------

    def post_silence(
        self,
        matchers: Sequence[Matcher],
        *,
        ends_at: datetime,
        created_by: str,
        comment: str,
        starts_at: datetime | None = None,
    ) -> str:
        """Create a silence and return its id. Raises InvalidInput for an empty comment or
        author, matchers ``check_silence_matchers`` refuses, or an end not after the start
        (nothing is sent then)."""
        start = starts_at or utcnow()
        check_silence_matchers(matchers)
        if not comment.strip():
            raise InvalidInput("a silence needs a comment saying why")
        if not created_by.strip():
            raise InvalidInput("a silence needs its author (createdBy)")
        if ends_at <= start:
            raise InvalidInput("a silence must end after it starts")
        body = {
            "matchers": [m.to_api() for m in matchers],
            "startsAt": _iso(start),
            "endsAt": _iso(ends_at),
            "createdBy": created_by.strip()[:100],
            "comment": comment.strip()[:1000],
        }
        raw = self._request("POST", "/api/v2/silences", json=body)
        try:
            return str(raw["silenceID"])
        except (KeyError, TypeError):
            raise self._not_alertmanager() from None

    def delete_silence(self, silence_id: str) -> None:
        """Expire a silence now; NotFound when there is none with that id."""
        _check_id(silence_id)
        self._request(
            "DELETE", f"/api/v2/silence/{silence_id}", missing=f"no silence {silence_id!r}", body=False
        )

    # --- plumbing ----------------------------------------------------------------------------

    def _not_alertmanager(self) -> AlertmanagerUnreachable:
        return self._unreachable("the answer was not Alertmanager's API")

    def _unreachable(self, why: str) -> AlertmanagerUnreachable:
        return AlertmanagerUnreachable(
            f"Alertmanager unreachable at {self.shown_url} ({why}); start it with `make run` or "
            "`prometheus-alertmanager --config.file=prometheus/alertmanager.yml`"
        )

    def _parse_list(self, raw: Any, parse: Any) -> list[Any]:
        if not isinstance(raw, list):
            raise self._not_alertmanager()
        try:
            return [parse(item) for item in raw]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._not_alertmanager() from None

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        missing: str | None = None,
        body: bool = True,
    ) -> Any:
        try:
            response = self._session.request(method, f"{self.url}{path}", json=json, timeout=self.timeout)
        except requests.Timeout:
            raise self._unreachable(f"no answer within {self.timeout:g}s") from None
        except requests.ConnectionError:
            raise self._unreachable("connection refused or reset") from None
        except requests.RequestException as err:
            raise self._unreachable(type(err).__name__) from None
        status = response.status_code
        text = response.text.strip()
        if status == 404 and missing is not None:
            raise NotFound(f"{missing} in Alertmanager at {self.shown_url}")
        if status == 500 and missing is not None and "not found" in text.lower():
            raise NotFound(f"{missing} in Alertmanager at {self.shown_url}")
        if 400 <= status < 500:
            detail = excerpt(text) or f"HTTP {status}"
            raise AlertmanagerRefused(f"Alertmanager refused the request: {detail}", detail)
        if status >= 300:
            raise self._unreachable(f"HTTP {status}: {excerpt(text)}")
        if not body:
            return None
        if not text:
            raise EmptyAnswer(f"Alertmanager at {self.shown_url} gave an empty answer to {method} {path}")
        try:
            return response.json()
        except ValueError:
            raise self._not_alertmanager() from None


def _check_id(silence_id: str) -> None:
    if not _SILENCE_ID.fullmatch(str(silence_id)):
        raise InvalidInput(f"silence id {silence_id!r} is not an Alertmanager silence id (a UUID)")
