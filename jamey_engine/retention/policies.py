"""Retention policies per memory layer, in the database: max_age and max_bytes, who set them and
when, and an audit trail of every change. The default is no policy: nothing is ever deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from jamey_engine.durations import format_duration, format_size, parse_duration, parse_size, utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.memory.layers import LAYERS, check_layer
from jamey_engine.memory.retention import Policy
from jamey_engine.models import RetentionEvent, RetentionPolicy

if TYPE_CHECKING:
    from jamey_engine.db import Database

log = logging.getLogger(__name__)

MIN_MAX_AGE = timedelta(hours=1)
MAX_MAX_AGE = timedelta(days=365 * 300)
MIN_MAX_BYTES = 1024**2
# The largest integer every JSON reader holds exactly (JavaScript's Number.MAX_SAFE_INTEGER,
# about 8 PiB): a larger max_bytes would not come back from the API as it was set.
MAX_MAX_BYTES = 2**53 - 1


@dataclass(frozen=True)
class PolicyInfo:
    """One layer's policy as the front doors show it (None: no limit; ``set_by``/``set_at`` None: no policy)."""

    layer: str
    max_age: timedelta | None = None
    max_bytes: int | None = None
    set_by: str | None = None
    set_at: datetime | None = None

    @property
    def policy(self) -> Policy:
        return Policy(self.max_age, self.max_bytes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: max_age as text (``30d``) and in seconds, max_bytes in bytes and as text; nulls when unset."""
        return {
            "layer": self.layer,
            "max_age": format_age(self.max_age) if self.max_age else None,
            "max_age_seconds": int(self.max_age.total_seconds()) if self.max_age else None,
            "max_bytes": self.max_bytes,
            "max_bytes_text": format_size(self.max_bytes) if self.max_bytes else None,
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat() if self.set_at else None,
        }


def format_age(age: timedelta) -> str:
    """A max_age as people write it: ``30d``, ``36h``, else the compact form (``1d2h30m``)."""
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return format_duration(age)


def check_max_age(value: str | timedelta) -> timedelta:
    """A max_age of at least one hour, from ``30d``-style text or a timedelta; InvalidInput otherwise."""
    if isinstance(value, timedelta):
        age = value
    else:
        try:
            age = parse_duration(value, field="max_age")
        except OverflowError:
            raise InvalidInput(f"max_age {value!r} is too long") from None
    if age < MIN_MAX_AGE:
        raise InvalidInput(f"max_age {value!r} is under the minimum of 1h")
    if age > MAX_MAX_AGE:
        raise InvalidInput(f"max_age {value!r} is longer than 300 years")
    return timedelta(seconds=int(age.total_seconds()))


def check_max_bytes(value: str | int) -> int:
    """A max_bytes of at least 1 MiB, from ``1GiB``-style text or an int; InvalidInput otherwise."""
    if isinstance(value, bool):
        raise InvalidInput(f"max_bytes {value!r} is not a size")
    size = value if isinstance(value, int) else parse_size(value, field="max_bytes")
    if size < MIN_MAX_BYTES:
        raise InvalidInput(f"max_bytes {value!r} is under the minimum of 1MiB")
    if size > MAX_MAX_BYTES:
        raise InvalidInput(f"max_bytes {value!r} is over the maximum of {MAX_MAX_BYTES} bytes (about 8PiB)")
    return size


def _describe(info: PolicyInfo | None) -> str | None:
    if info is None or info.policy.empty:
        return None
    parts = []
    if info.max_age is not None:
        parts.append(f"max_age={format_age(info.max_age)}")
    if info.max_bytes is not None:
        parts.append(f"max_bytes={format_size(info.max_bytes)}")
    return " ".join(parts)


def _info(row: RetentionPolicy) -> PolicyInfo:
    age = timedelta(seconds=row.max_age_seconds) if row.max_age_seconds is not None else None
    return PolicyInfo(row.layer, age, row.max_bytes, row.set_by, row.set_at)


def clean_actor(actor: str) -> str:
    text = str(actor or "").strip()
    if not text:
        raise InvalidInput("actor must not be empty")
    return text[:100]


class RetentionPolicies:
    """The layers' retention policies in the database. Thread-safe (each call is one transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def show(self) -> list[PolicyInfo]:
        """Every layer, in layer order, with its policy (max_age/max_bytes None when unset)."""
        with self.db.session() as session:
            rows = {row.layer: _info(row) for row in session.scalars(sa.select(RetentionPolicy))}
        return [rows.get(layer, PolicyInfo(layer)) for layer in LAYERS]

    def get(self, layer: str) -> PolicyInfo:
        """One layer's policy. Raises InvalidInput for an unknown layer."""
        check_layer(layer)
        return next(info for info in self.show() if info.layer == layer)

    def active(self) -> dict[str, Policy]:
        """The layers that have a policy, and their policies."""
        return {info.layer: info.policy for info in self.show() if not info.policy.empty}

    def set(
        self,
        layer: str,
        *,
        max_age: str | timedelta | None = None,
        max_bytes: str | int | None = None,
        actor: str,
    ) -> PolicyInfo:
        """Set ``max_age`` and/or ``max_bytes`` of ``layer`` (a limit not given stays as it was),
        recording ``actor`` and the time, and the change in the audit trail (same transaction).

        Raises InvalidInput, changing nothing: an unknown layer, neither limit given, max_age
        under 1h, max_bytes under 1 MiB, a malformed duration or size.
        """
        check_layer(layer)
        if max_age is None and max_bytes is None:
            raise InvalidInput("give max_age, max_bytes or both (e.g. max_age 30d, max_bytes 1GiB)")
        age = check_max_age(max_age) if max_age is not None else None
        size = check_max_bytes(max_bytes) if max_bytes is not None else None
        return self._change(layer, actor, lambda old: (age or old.max_age, size or old.max_bytes))

    def replace(
        self, layer: str, *, max_age: str | timedelta | None, max_bytes: str | int | None, actor: str
    ) -> PolicyInfo:
        """Make ``layer``'s policy exactly this (None: no such limit; both None: no policy). Audited.

        Raises InvalidInput as :meth:`set` does (neither limit is allowed here: it clears).
        """
        check_layer(layer)
        age = check_max_age(max_age) if max_age is not None else None
        size = check_max_bytes(max_bytes) if max_bytes is not None else None
        return self._change(layer, actor, lambda old: (age, size))

    def clear(self, layer: str, *, max_age: bool = False, max_bytes: bool = False, actor: str) -> PolicyInfo:
        """Remove the named limits of ``layer`` (neither named: both). Audited. Raises InvalidInput."""
        check_layer(layer)
        both = not max_age and not max_bytes
        return self._change(
            layer,
            actor,
            lambda old: (
                None if (max_age or both) else old.max_age,
                None if (max_bytes or both) else old.max_bytes,
            ),
        )

    def _change(self, layer: str, actor: str, new: Any) -> PolicyInfo:
        who = clean_actor(actor)
        now = utcnow()
        with self.db.session() as session:
            row = session.get(RetentionPolicy, layer, with_for_update=True)
            old = _info(row) if row is not None else PolicyInfo(layer)
            age, size = new(old)
            after = PolicyInfo(layer, age, size, who, now)
            if row is not None and after.policy.empty:
                session.delete(row)
            elif not after.policy.empty:
                if row is None:
                    row = RetentionPolicy(layer=layer)
                    session.add(row)
                row.max_age_seconds = int(age.total_seconds()) if age is not None else None
                row.max_bytes = size
                row.set_by = who
                row.set_at = now
            session.add(
                RetentionEvent(at=now, layer=layer, actor=who, before=_describe(old), after=_describe(after))
            )
        log.info("retention policy of %s: %s -> %s (by %s)", layer, _describe(old), _describe(after), who)
        return after if not after.policy.empty else PolicyInfo(layer)

    def audit(self, limit: int = 200, layer: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` policy changes first: dict(at, layer, actor, before, after)."""
        if limit <= 0:
            raise InvalidInput(f"audit limit {limit!r} must be above zero")
        query = sa.select(RetentionEvent).order_by(RetentionEvent.id.desc()).limit(limit)
        if layer is not None:
            query = query.where(RetentionEvent.layer == check_layer(layer))
        with self.db.session() as session:
            return [
                {"at": e.at, "layer": e.layer, "actor": e.actor, "before": e.before, "after": e.after}
                for e in session.scalars(query)
            ]
