"""Alertmanager's webhook payload (version 4): :func:`parse_webhook` checks one and raises
InvalidInput naming the first bad field; :data:`WEBHOOK_SCHEMA` states exactly what it accepts
(the webhook route publishes it as its OpenAPI request body).

Every field has a cap that Alertmanager, with the project's rules and config (``max_alerts:
1000`` in prometheus/alertmanager.yml), never reaches: at most MAX_ALERTS alerts a payload,
MAX_PAIRS labels or annotations an object, names of MAX_NAME_CHARS, label values of
MAX_LABEL_CHARS, annotation values and other texts of MAX_TEXT_CHARS. A payload past one is
refused whole (400 naming the field), so one key cannot fill the history with giant rows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jamey_engine.durations import STORED_DATE_TIME_PATTERN, parse_timestamp
from jamey_engine.errors import InvalidInput

_FRACTION = re.compile(r"(\.\d+)")

STATUSES = ("firing", "resolved")
WEBHOOK_VERSION = "4"
MAX_ALERTS = 1_000
MAX_FINGERPRINT = 64
#: Most labels (or annotations) in one object.
MAX_PAIRS = 64
#: Longest label or annotation name.
MAX_NAME_CHARS = 128
#: Longest label value.
MAX_LABEL_CHARS = 1_024
#: Longest annotation value, URL, group key or receiver.
MAX_TEXT_CHARS = 8_192
# Go's zero time: how Alertmanager writes the endsAt of an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"
# When an alert started (or ended): RFC 3339 as Go writes it, in the years the history's frames hold.
MOMENT_PATTERN = f"^{STORED_DATE_TIME_PATTERN}$"
ENDS_PATTERN = f"^({ZERO_TIME}|{STORED_DATE_TIME_PATTERN})$"
_MOMENT = re.compile(MOMENT_PATTERN)


@dataclass(frozen=True)
class Notification:
    """One alert of a webhook payload, checked."""

    fingerprint: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


def _text(value: Any, where: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``value`` if it is a string of valid Unicode text (no lone surrogate: no schema can name
    those, and no column can store them) of at most ``limit`` characters; InvalidInput naming
    ``where`` otherwise."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: expected a string, got {value!r}"[:200])
    if len(value) > limit:
        raise InvalidInput(f"{where}: at most {limit} characters, got {len(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInput(
            f"{where}: not valid Unicode text (a lone surrogate at position {err.start})"
        ) from None
    return value


def _texts(value: Any, where: str, limit: int = MAX_TEXT_CHARS) -> dict[str, str]:
    """An object of at most MAX_PAIRS strings of at most ``limit`` characters (labels,
    annotations), named by at most MAX_NAME_CHARS characters each."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected an object of strings, got {value!r}"[:200])
    if len(value) > MAX_PAIRS:
        raise InvalidInput(f"{where}: at most {MAX_PAIRS} names, got {len(value)}")
    return {
        _text(k, f"{where} (a name)", MAX_NAME_CHARS): _text(v, _member(where, str(k)), limit)
        for k, v in value.items()
    }


def _member(where: str, name: str) -> str:
    """Where a member is, for a one-line message: ``labels.severity``, else ``labels['a b\\n']``."""
    return f"{where}.{name}" if name.isidentifier() and len(name) <= 60 else f"{where}[{name[:60]!r}]"


def _moment(value: Any, where: str) -> datetime:
    """An RFC 3339 date-time in the years 1970 to 2261 (MOMENT_PATTERN), as aware UTC."""
    if not isinstance(value, str) or not _MOMENT.fullmatch(value):
        raise InvalidInput(
            f"{where}: expected an RFC 3339 date-time in the years 1970 to 2261, "
            f"e.g. 2026-01-31T12:00:00Z, got {value!r}"[:200]
        )
    # Go writes nanoseconds; Python reads at most microseconds.
    return parse_timestamp(_FRACTION.sub(lambda m: m.group(1)[:7], value), field=where)


def _status(value: Any, where: str) -> str:
    if value not in STATUSES:
        raise InvalidInput(f"{where}: expected firing or resolved, got {value!r}"[:200])
    return str(value)


def _check_group(payload: Mapping[str, Any]) -> None:
    """The payload's fields about the group of alerts: optional, but of their stated types."""
    for name in ("groupKey", "receiver", "externalURL"):
        if name in payload:
            _text(payload[name], name)
    if "status" in payload:
        _status(payload["status"], "status")
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        if name in payload:
            _texts(payload[name], name, MAX_TEXT_CHARS if name == "commonAnnotations" else MAX_LABEL_CHARS)
    if "truncatedAlerts" in payload:
        count = payload["truncatedAlerts"]
        whole = isinstance(count, int) or (isinstance(count, float) and count.is_integer())
        if isinstance(count, bool) or not whole or count < 0:
            raise InvalidInput(f"truncatedAlerts: expected a whole number of at least 0, got {count!r}"[:200])


def _alert(alert: Any, where: str) -> Notification:
    if not isinstance(alert, Mapping):
        raise InvalidInput(f"{where}: expected an object")
    fingerprint = alert.get("fingerprint")
    if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= MAX_FINGERPRINT:
        raise InvalidInput(
            f"{where}.fingerprint: expected Alertmanager's fingerprint (1-{MAX_FINGERPRINT} characters)"
        )
    _text(fingerprint, f"{where}.fingerprint")
    status = _status(alert.get("status"), f"{where}.status")
    if "labels" not in alert:
        raise InvalidInput(f"{where}.labels: the alertname label is missing (no labels)")
    labels = _texts(alert["labels"], f"{where}.labels", MAX_LABEL_CHARS)
    if not labels.get("alertname"):
        raise InvalidInput(f"{where}.labels: the alertname label is missing")
    starts = _moment(alert.get("startsAt"), f"{where}.startsAt")
    ends = alert.get("endsAt", ZERO_TIME)
    ends_at = None if ends == ZERO_TIME else _moment(ends, f"{where}.endsAt")
    annotations = _texts(alert["annotations"], f"{where}.annotations") if "annotations" in alert else {}
    if "generatorURL" in alert:
        _text(alert["generatorURL"], f"{where}.generatorURL")
    return Notification(fingerprint, status, labels, annotations, starts, ends_at)


def parse_webhook(payload: Any) -> list[Notification]:
    """The alerts of an Alertmanager webhook payload (version 4), checked: exactly what
    :data:`WEBHOOK_SCHEMA` states (and valid Unicode text, which no schema can state).

    Raises InvalidInput naming the first bad field: not an object, another version, no
    ``alerts`` list, more than MAX_ALERTS alerts, a field past its cap (see the module), a group field of the wrong type, or an alert
    without a fingerprint, a status of firing/resolved, an ``alertname`` label or a valid
    ``startsAt``, or with labels, annotations or an ``endsAt`` that are not what the schema says.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput("body: expected Alertmanager's webhook payload (a JSON object)")
    version = payload.get("version")
    if version != WEBHOOK_VERSION:
        raise InvalidInput(
            f"version: expected Alertmanager's webhook payload version '4', got {version!r}"[:200]
        )
    _check_group(payload)
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidInput("alerts: expected a list of alerts")
    if len(alerts) > MAX_ALERTS:
        raise InvalidInput(f"alerts: at most {MAX_ALERTS} alerts in one payload, got {len(alerts)}")
    return [_alert(alert, f"alerts[{index}]") for index, alert in enumerate(alerts)]


_STATUS_SCHEMA: dict[str, Any] = {"type": "string", "enum": list(STATUSES)}
_TEXT_SCHEMA: dict[str, Any] = {"type": "string", "maxLength": MAX_TEXT_CHARS}
_LABEL_SCHEMA: dict[str, Any] = {"type": "string", "maxLength": MAX_LABEL_CHARS}
_NAMES: dict[str, Any] = {"maxProperties": MAX_PAIRS, "propertyNames": {"maxLength": MAX_NAME_CHARS}}
_TEXTS_SCHEMA: dict[str, Any] = {"type": "object", **_NAMES, "additionalProperties": _TEXT_SCHEMA}
_LABELS_SCHEMA: dict[str, Any] = {"type": "object", **_NAMES, "additionalProperties": _LABEL_SCHEMA}
_MOMENT_TEXT = "RFC 3339 (as Go writes it, nanoseconds allowed) in the years 1970 to 2261"

#: Alertmanager's webhook payload (version 4) as a JSON Schema: exactly what :func:`parse_webhook`
#: accepts. Fields it does not name are allowed and ignored, as Alertmanager may add some.
WEBHOOK_SCHEMA: dict[str, Any] = {
    "title": "AlertmanagerWebhook",
    "description": "Alertmanager's webhook payload, version 4: one notification of a group of alerts.",
    "type": "object",
    "required": ["version", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": [WEBHOOK_VERSION]},
        "groupKey": _TEXT_SCHEMA,
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": _STATUS_SCHEMA,
        "receiver": {**_TEXT_SCHEMA, "description": "Stored with each alert (its first 100 characters)."},
        "groupLabels": _LABELS_SCHEMA,
        "commonLabels": _LABELS_SCHEMA,
        "commonAnnotations": _TEXTS_SCHEMA,
        "externalURL": _TEXT_SCHEMA,
        "alerts": {
            "type": "array",
            "maxItems": MAX_ALERTS,
            "items": {
                "type": "object",
                "required": ["status", "labels", "startsAt", "fingerprint"],
                "properties": {
                    "status": _STATUS_SCHEMA,
                    "labels": {
                        **_LABELS_SCHEMA,
                        "description": "Strings; alertname is required, severity and layer are kept for filters.",
                        "required": ["alertname"],
                        "properties": {"alertname": {**_LABEL_SCHEMA, "minLength": 1}},
                    },
                    "annotations": _TEXTS_SCHEMA,
                    "startsAt": {
                        "type": "string",
                        "format": "date-time",
                        "pattern": MOMENT_PATTERN,
                        "description": _MOMENT_TEXT + ".",
                    },
                    "endsAt": {
                        "type": "string",
                        "format": "date-time",
                        "pattern": ENDS_PATTERN,
                        "description": f"{_MOMENT_TEXT}, or Go's zero time {ZERO_TIME} (not ended).",
                    },
                    "generatorURL": _TEXT_SCHEMA,
                    "fingerprint": {"type": "string", "minLength": 1, "maxLength": MAX_FINGERPRINT},
                },
            },
        },
    },
}
