"""Alert acknowledgements: an on-call person says "I'm on it" for a firing alert, without silencing.

An acknowledgement belongs to one alert *instance*: its fingerprint and start, as Alertmanager
delivered it to the webhook (``alert_notifications``). It records who, when and why, and it
ends when that instance resolves: a resolved notification with the same fingerprint and start.
That end is read from the history, not written, so whichever process stores the resolution
(the webhook) ends it, and a new firing of the same alert (a new start) is not acknowledged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from jamey_engine.durations import utcnow
from jamey_engine.errors import Conflict, InvalidInput, NotFound
from jamey_engine.models import AlertAcknowledgement, AlertNotification
from jamey_engine.text import WHITESPACE

if TYPE_CHECKING:
    from jamey_engine.db import Database

COMMENT_LIMIT = 1000
FINGERPRINT_PATTERN = r"^[0-9a-fA-F]{1,64}$"
_FINGERPRINT = re.compile(FINGERPRINT_PATTERN)
_ACKS = cast(sa.Table, AlertAcknowledgement.__table__)
_NOTES = cast(sa.Table, AlertNotification.__table__)


@dataclass(frozen=True)
class Acknowledgement:
    """Who acknowledged which alert instance, when and why; ``ended_at`` is when the instance
    resolved (None while it still fires)."""

    fingerprint: str
    alertname: str
    starts_at: datetime
    actor: str
    comment: str
    at: datetime
    ended_at: datetime | None

    @property
    def active(self) -> bool:
        """True until the acknowledged instance resolves."""
        return self.ended_at is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: every field, times in ISO 8601."""
        return {
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "starts_at": self.starts_at.isoformat(),
            "actor": self.actor,
            "comment": self.comment,
            "at": self.at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "active": self.active,
        }


def _resolved_at(conn: sa.Connection, fingerprint: str, starts_at: datetime) -> datetime | None:
    """When the instance resolved (its resolved notification's end, else when it arrived)."""
    row = conn.execute(
        sa.select(_NOTES.c.ends_at, _NOTES.c.received_at)
        .where(_NOTES.c.fingerprint == fingerprint, _NOTES.c.starts_at == starts_at)
        .where(_NOTES.c.status == "resolved")
        .limit(1)
    ).first()
    return None if row is None else (row.ends_at or row.received_at)


def acknowledge(db: Database, fingerprint: str, comment: str, *, actor: str) -> Acknowledgement:
    """Acknowledge the latest firing instance of the alert ``fingerprint`` in the history, on
    behalf of ``actor``, with ``comment`` (required, at most 1000 characters).

    Raises InvalidInput naming the field for a malformed fingerprint or an empty or too long
    comment; NotFound when the history holds no firing notification of that fingerprint; and
    Conflict when that instance has already resolved. Nothing is recorded then.
    """
    # Blank as the API schema's NOT_BLANK pattern means it (jamey_engine.text).
    text = str(comment or "").strip(WHITESPACE)
    if not _FINGERPRINT.fullmatch(str(fingerprint)):
        raise InvalidInput(
            f"fingerprint {fingerprint!r} is not an alert fingerprint (hexadecimal, as Alertmanager gives)"
        )
    if not text:
        raise InvalidInput("comment must not be empty: say what you are doing about the alert")
    if len(text) > COMMENT_LIMIT:
        raise InvalidInput(f"comment is {len(text)} characters long; the limit is {COMMENT_LIMIT}")
    with db.begin() as conn:
        latest = conn.execute(
            sa.select(_NOTES.c.alertname, _NOTES.c.starts_at)
            .where(_NOTES.c.fingerprint == fingerprint, _NOTES.c.status == "firing")
            .order_by(_NOTES.c.starts_at.desc())
            .limit(1)
        ).first()
        if latest is None:
            raise NotFound(
                f"alert {fingerprint} has no firing notification in the alert history "
                "(Alertmanager delivers them to the webhook; jamey alerts history lists them)"
            )
        resolved = _resolved_at(conn, fingerprint, latest.starts_at)
        if resolved is not None:
            raise Conflict(
                f"alert {latest.alertname} ({fingerprint}) resolved at {resolved:%Y-%m-%d %H:%M:%S} UTC: nothing to acknowledge"
            )
        now = utcnow()
        conn.execute(
            _ACKS.insert().values(
                fingerprint=fingerprint,
                alertname=latest.alertname,
                starts_at=latest.starts_at,
                actor=(actor or "unknown")[:100],
                comment=text,
                at=now,
            )
        )
    return Acknowledgement(
        fingerprint, latest.alertname, latest.starts_at, (actor or "unknown")[:100], text, now, None
    )


def acknowledgements(
    db: Database, since: datetime | None = None, *, fingerprint: str | None = None
) -> list[Acknowledgement]:
    """The acknowledgements made since ``since`` (default: all), newest first, each with the
    time its instance resolved (None while it fires); optionally of one fingerprint."""
    query = sa.select(_ACKS).order_by(_ACKS.c.at.desc(), _ACKS.c.id.desc())
    if since is not None:
        query = query.where(_ACKS.c.at >= since)
    if fingerprint is not None:
        query = query.where(_ACKS.c.fingerprint == fingerprint)
    found: list[Acknowledgement] = []
    with db.connect() as conn:
        for row in conn.execute(query).all():
            found.append(
                Acknowledgement(
                    fingerprint=row.fingerprint,
                    alertname=row.alertname,
                    starts_at=row.starts_at,
                    actor=row.actor,
                    comment=row.comment,
                    at=row.at,
                    ended_at=_resolved_at(conn, row.fingerprint, row.starts_at),
                )
            )
    return found


def active_acknowledgements(db: Database) -> dict[str, Acknowledgement]:
    """The newest acknowledgement of each alert fingerprint whose instance still fires."""
    active: dict[str, Acknowledgement] = {}
    for ack in acknowledgements(db):
        if ack.active and ack.fingerprint not in active:
            active[ack.fingerprint] = ack
    return active
