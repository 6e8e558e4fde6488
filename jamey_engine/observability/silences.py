"""Silences made and expired on behalf of a person, and recorded: the operation log (kind
``silence``) keeps who silenced what, for how long and why, success or refusal. The Alertmanager
client itself (``alertmanager.py``) only talks to Alertmanager."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.observability.alertmanager import (
    MAX_SILENCE,
    AlertmanagerClient,
    AlertmanagerRefused,
    AlertmanagerUnreachable,
    EmptyAnswer,
)
from jamey_engine.observability.matchers import Matcher

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.oplog import EventSink


def create_silence(
    client: AlertmanagerClient,
    db: Database,
    events: EventSink | None,
    matchers: Sequence[Matcher],
    duration: timedelta,
    *,
    actor: str,
    comment: str,
) -> str:
    """Silence what ``matchers`` catch for ``duration`` from now, as ``actor``, with ``comment``;
    record it in the operation log (kind ``silence``) and return the silence id.

    Raises InvalidInput for no matcher, an empty comment, or a duration not in (0, 30 days];
    the client's errors otherwise (a refusal is recorded as a failure). The record is best
    effort: a database that is down does not undo the silence.
    """
    from jamey_engine import oplog

    if duration <= timedelta(0) or duration > MAX_SILENCE:
        raise InvalidInput(f"silence duration must be above zero and at most {MAX_SILENCE.days} days")
    started = time.monotonic()
    text = ", ".join(str(m) for m in matchers)
    try:
        silence_id = client.post_silence(
            matchers, ends_at=utcnow() + duration, created_by=actor, comment=comment
        )
    except (AlertmanagerRefused, AlertmanagerUnreachable, EmptyAnswer) as err:
        oplog.record(
            db, events, "silence", "failure", time.monotonic() - started,
            detail=f"silence {text} refused: {err.message}", actor=actor,
        )  # fmt: skip
        raise
    hours = duration.total_seconds() / 3600
    oplog.record(
        db, events, "silence", "success", time.monotonic() - started,
        detail=f"created silence {silence_id} of {text} for {hours:g}h: {comment.strip()}", actor=actor,
    )  # fmt: skip
    return silence_id


def expire_silence(
    client: AlertmanagerClient, db: Database, events: EventSink | None, silence_id: str, *, actor: str
) -> None:
    """Expire the silence ``silence_id`` now, as ``actor``, and record it in the operation log.

    Raises InvalidInput for a malformed id, NotFound for an unknown one, and the client's errors.
    """
    from jamey_engine import oplog

    started = time.monotonic()
    client.delete_silence(silence_id)
    oplog.record(
        db, events, "silence", "success", time.monotonic() - started,
        detail=f"expired silence {silence_id}", actor=actor,
    )  # fmt: skip
