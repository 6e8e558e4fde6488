"""The audit trail of API keys: one row per change, who made it, and the expiries once each.

Every change :class:`~jamey_engine.keys.manager.KeyManager` makes writes its event with
:func:`record_event` in the transaction of the change itself, so a change and its audit row are
committed together or not at all. An expiry is no one's change: :func:`record_expiries` writes
it once (across processes) when it is first noticed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jamey_engine.db import Database
from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.models import ApiKey, KeyEvent

EventName = Literal["created", "rotated", "revoked", "expired", "rate_limit_changed", "legacy_imported"]
EVENTS: tuple[EventName, ...] = get_args(EventName)


def record_event(
    session: Session, now: datetime, event: EventName, row: ApiKey, actor: str, detail: str | None
) -> None:
    """Add the audit row of ``event`` on ``row`` to ``session`` (committed with the change)."""
    session.add(KeyEvent(at=now, event=event, key_id=row.id, key_name=row.name, actor=actor, detail=detail))


def record_expiries(db: Database) -> None:
    """Write one "expired" audit event per key whose expiry has passed (once, across processes)."""
    now = utcnow()
    with db.session() as session:
        due = session.scalars(
            sa.select(ApiKey).where(
                ApiKey.expires_at <= now,
                ApiKey.expiry_recorded_at.is_(None),
                ApiKey.revoked_at.is_(None),
            )
        ).all()
        for row in due:
            claimed = session.execute(
                sa.update(ApiKey)
                .where(ApiKey.id == row.id, ApiKey.expiry_recorded_at.is_(None))
                .values(expiry_recorded_at=now)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                record_event(session, now, "expired", row, "system", f"expired at {row.expires_at}")


def audit_events(db: Database, limit: int = 200, key_id: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` audit events (of one key when ``key_id`` is given), newest first, each
    dict(at, event, key_id, key_name, actor, detail); expiries not yet recorded are written first.
    Raises InvalidInput for a limit under one (nothing written then)."""
    if limit <= 0:
        raise InvalidInput(f"audit limit {limit!r} must be above zero")
    record_expiries(db)
    query = sa.select(KeyEvent).order_by(KeyEvent.id.desc()).limit(limit)
    if key_id is not None:
        query = query.where(KeyEvent.key_id == key_id)
    with db.session() as session:
        return [
            {
                "at": event.at,
                "event": event.event,
                "key_id": event.key_id,
                "key_name": event.key_name,
                "actor": event.actor,
                "detail": event.detail,
            }
            for event in session.scalars(query)
        ]
