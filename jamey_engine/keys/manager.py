"""API keys: create, list, verify, rotate, revoke, limit: the lifecycle of a key.

What a key's status is (and its hygiene) is :mod:`jamey_engine.keys.status`; the audit trail
each change writes is :mod:`jamey_engine.keys.audit`. Both are re-exported here.

* Tokens look like ``jmy_<lookup id>_<secret>_<checksum>`` (see :mod:`jamey_engine.keys.keyformat`);
  a malformed token or a failed checksum is rejected before any database query.
* Only a hash is stored: SHA-256 of the token, or HMAC-SHA256 with ``JAMEY_KEY_PEPPER``. The
  plaintext is returned once by ``create``/``rotate`` and never stored or logged.
* ``verify`` (the hot path, in :mod:`jamey_engine.keys.verify`) answers from an in-process
  cache for ``settings.key_cache_seconds`` (default 2 s): a revocation, rotation or limit change
  committed by ANY process is honoured by every other process at most that long after its
  commit (by the process that made it: at once). Expiry and grace end apply exactly on time.
  Last-used times are written in batches, never once per request.
* The deprecated ``API_KEY`` variable still authenticates (memory:read and memory:write, the
  default limit, one deprecation warning per process) until ``import_legacy`` moves its hash
  into the database, after which the database row governs it (revoke it there).
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jamey_engine.config import Settings
from jamey_engine.db import Database
from jamey_engine.durations import format_duration, utcnow
from jamey_engine.errors import Conflict, InvalidInput, NotFound
from jamey_engine.keys import keyformat
from jamey_engine.keys.audit import EVENTS as EVENTS
from jamey_engine.keys.audit import audit_events, record_event, record_expiries
from jamey_engine.keys.ratelimit import MAX_KEY_LIMIT, parse_limit
from jamey_engine.keys.scopes import DEFAULT_SCOPES, SCOPES
from jamey_engine.keys.status import STATUSES as STATUSES
from jamey_engine.keys.status import WORKING_STATUSES, working_hygiene
from jamey_engine.keys.status import CreatedKey as CreatedKey
from jamey_engine.keys.status import KeyInfo as KeyInfo
from jamey_engine.keys.status import key_status as key_status
from jamey_engine.keys.usage import UsageRecorder, usage_by_key
from jamey_engine.keys.verify import LEGACY_SCOPES, KeyVerifier, VerifiedKey
from jamey_engine.models import ApiKey

__all__ = [
    "SCOPES",
    "STATUSES",
    "CreatedKey",
    "KeyInfo",
    "KeyManager",
    "VerifiedKey",
    "key_status",
    "normalize_scopes",
]

log = logging.getLogger(__name__)

NAME_MAX = 100
# Characters a key name may not contain: C0 and C1 controls, line and paragraph separators,
# invisible format characters (zero-width, bidirectional overrides and isolates, BOM). Names
# show in logs and the audit trail; these would forge or hide text there. (Lone surrogates are
# refused too, but outside the pattern: they are not Unicode scalar values, so a schema cannot
# name them and no client can send them as valid UTF-8 JSON.)
NAME_FORBIDDEN = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2069\\ufeff"
# A key name: at least one character that is not white space, none of the forbidden ones.
NAME_PATTERN = f"^[^{NAME_FORBIDDEN}]*[^{NAME_FORBIDDEN}\\s][^{NAME_FORBIDDEN}]*$"
_NAME_FORBIDDEN = re.compile(f"[{NAME_FORBIDDEN}\\ud800-\\udfff]")


class EventSink(Protocol):
    """What KeyManager needs from jamey_engine.events.EventPublisher."""

    def publish(self, kind: str, payload: dict[str, Any]) -> None: ...


def normalize_scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    """Scopes in canonical order, without duplicates.

    Raises InvalidInput naming the unknown scope, or when there is none.
    """
    given = [scopes] if isinstance(scopes, str) else list(scopes)
    for scope in given:
        if scope not in SCOPES:
            raise InvalidInput(f"scope {scope!r} is unknown; use one of {', '.join(SCOPES)}")
    if not given:
        raise InvalidInput(f"a key needs at least one scope: {', '.join(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in given)


def _clean_name(name: str, field: str = "key name") -> str:
    text = str(name).strip()
    if not text:
        raise InvalidInput(f"{field} must not be empty")
    if len(text) > NAME_MAX:
        raise InvalidInput(f"{field} {text[:20]!r}… is longer than {NAME_MAX} characters")
    if _NAME_FORBIDDEN.search(text):
        raise InvalidInput(f"{field} {text!r} contains control characters")
    return text


class KeyManager:
    """Every operation on API keys. Thread-safe; one per process is enough.

    ``events`` (an EventPublisher or None) receives ``publish("key", {...})`` on create, rotate,
    revoke, set-limit and import-legacy, without secrets.
    """

    def __init__(self, db: Database, settings: Settings, events: EventSink | None = None) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.verifier = KeyVerifier(db, settings, on_expired=self._record_expiries)
        self.usage = UsageRecorder(db)
        db.on_close(self.usage.flush)
        self.cache_seconds = settings.key_cache_seconds
        self.verification_counts = self.verifier.verification_counts  # result -> count, for metrics

    # -- verifying (see keyverify) ------------------------------------------------------

    def verify(self, plaintext: str | None) -> VerifiedKey:
        """Who ``plaintext`` is, or KeyRejected(reason) with reason in missing, malformed,
        unknown, expired, revoked.

        Answers from the in-process cache for up to ``key_cache_seconds``; malformed tokens never
        reach the database; last-used times are batched.
        """
        return self.verifier.verify(plaintext)

    def verify_cached(self, plaintext: str) -> VerifiedKey | None:
        """``verify`` answered from the cache alone (no database at all), or None when it cannot."""
        return self.verifier.verify_cached(plaintext)

    def hash_key(self, plaintext: str) -> str:
        """The stored form of a key (SHA-256, or HMAC-SHA256 with the pepper), hex."""
        return self.verifier.hash_key(plaintext)

    def flush_last_used(self) -> None:
        """Write the batched last-used times and per-key usage counts now (also done every few
        seconds and on close). Never raises: what cannot be written now is logged (last-used times)
        or kept for the next flush (usage counts)."""
        self.verifier.flush_last_used()
        self.usage.flush()

    def forget_cache(self) -> None:
        """Drop this process's cached verification answers."""
        self.verifier.forget()

    def close(self) -> None:
        """Flush the last-used times and usage counts."""
        self.flush_last_used()

    # -- reading --------------------------------------------------------------------------

    def _info(self, row: ApiKey, now: datetime) -> KeyInfo:
        status = key_status(row, now)
        revoked_at = row.revoked_at
        if revoked_at is None and row.grace_until is not None and row.grace_until <= now:
            revoked_at = row.grace_until
        return KeyInfo(
            id=row.id,
            name=row.name,
            scopes=tuple(row.scopes.split()),
            rate_limit=row.rate_limit or self.settings.default_rate_limit,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=revoked_at,
            last_used_at=self.verifier.pending_last_used(row.id) or row.last_used_at,
            status=status,
            rotated_to=row.rotated_to,
            rotated_from=row.rotated_from,
            grace_until=row.grace_until,
            custom_rate_limit=row.rate_limit is not None,
            legacy=row.legacy,
        )

    def list(self, *, record_expiries: bool = True) -> builtins.list[KeyInfo]:
        """Every key, newest first, with its current status (never a secret). Writes the audit
        events of keys that expired since (unless ``record_expiries`` is False: a read only)."""
        if record_expiries:
            self._record_expiries()
        now = utcnow()
        with self.db.session() as session:
            rows = session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id))
            return [self._info(row, now) for row in rows]

    def usage_report(
        self, days: float | None = None, now: datetime | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Per key: ``id``, ``name``, ``requests``, ``rate_limited``, ``errors``, ``last_used_at``
        over the last ``days`` days (all time when None), counted by every service process;
        this process's own pending counts are written first."""
        self.flush_last_used()
        return usage_by_key(self.db, days, now)

    def hygiene(
        self,
        now: datetime | None = None,
        stale_days: float | None = None,
        infos: Iterable[KeyInfo] | None = None,
    ) -> builtins.list[tuple[KeyInfo, tuple[str, ...]]]:
        """Every working key (active or expiring) with its hygiene flags (see
        ``jamey_engine.keys.usage.FLAGS``), stale after ``stale_days`` (default
        JAMEY_KEY_STALE_DAYS) and due for rotation after JAMEY_KEY_ROTATE_DAYS. ``infos``: keys
        the caller already listed (default: :meth:`list`)."""
        days = self.settings.key_stale_days if stale_days is None else stale_days
        if days < 1:
            raise InvalidInput(f"the stale period must be at least 1 day, not {days}")
        listed = self.list() if infos is None else infos
        return working_hygiene(listed, now or utcnow(), days, self.settings.key_rotate_days)

    def stale(
        self, unused_for: timedelta | None = None, now: datetime | None = None
    ) -> builtins.list[KeyInfo]:
        """Working keys not used for ``unused_for`` (default JAMEY_KEY_STALE_DAYS days); a key
        never used counts from its creation. Raises InvalidInput for a period under a day."""
        days = None
        if unused_for is not None:
            days = unused_for / timedelta(days=1)
            if days < 1:
                raise InvalidInput(f"--unused-for must be at least 1d, not {format_duration(unused_for)}")
        flagged = self.hygiene(now, days)
        return [info for info, flags in flagged if "stale" in flags]

    def show(self, key_id: str) -> KeyInfo:
        """One key by its id. Raises NotFound."""
        with self.db.session() as session:
            return self._info(self._get(session, key_id), utcnow())

    def count(self) -> int:
        """How many keys the database holds (of any status)."""
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(ApiKey)).scalar_one())

    def audit(self, limit: int = 200, key_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """The newest ``limit`` audit events (of one key when ``key_id`` is given), newest first.

        Each is dict(at, event, key_id, key_name, actor, detail).
        """
        return audit_events(self.db, limit, key_id)

    def _get(self, session: Session, key_id: str) -> ApiKey:
        row = session.get(ApiKey, str(key_id).strip())
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}; `jamey keys list` shows the ids")
        return row

    # -- changing -------------------------------------------------------------------------

    def create(
        self,
        name: str,
        scopes: Iterable[str] | str = DEFAULT_SCOPES,
        rate_limit: str | None = None,
        expires_in: timedelta | None = None,
        actor: str = "cli",
    ) -> CreatedKey:
        """Create a key and return its plaintext (once) with its info.

        Names are unique among keys still in use (active or expiring). Raises InvalidInput
        (bad name, scope, limit or expiry) or Conflict (duplicate name); nothing is written then.
        """
        name = _clean_name(name)
        actor = _clean_name(actor, "actor")
        scope_tuple = normalize_scopes(scopes)
        limit_text = self._check_limit(rate_limit) if rate_limit is not None else None
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidInput(f"expiry {format_duration(expires_in)!r} must be in the future")
        now = utcnow()
        with self.db.session() as session:
            self._check_name_free(session, name, now)
            plaintext, token = self._fresh_token(session)
            row = ApiKey(
                id=token.lookup_id,
                name=name,
                secret_hash=self.hash_key(plaintext),
                scopes=" ".join(scope_tuple),
                rate_limit=limit_text,
                created_at=now,
                expires_at=now + expires_in if expires_in else None,
                legacy=False,
            )
            session.add(row)
            detail = f"scopes={','.join(scope_tuple)} rate_limit={limit_text or 'default'}"
            if row.expires_at:
                detail += f" expires_at={row.expires_at.isoformat()}"
            record_event(session, now, "created", row, actor, detail)
            info = self._info(row, now)
        self.verifier.forget_unknown()  # had it been presented before, it works here at once
        log.info("API key %s (%s) created by %s", info.id, info.name, actor)
        self._changed("created", info, actor)
        return CreatedKey(plaintext, info)

    def rotate(self, key_id: str, grace: timedelta | None = None, actor: str = "cli") -> CreatedKey:
        """Replace a key with a new one of the same name, scopes, limit and expiry time.

        The old key stops at once, or after ``grace``. Raises NotFound, InvalidInput (bad grace)
        or Conflict (the key is revoked, expired or already rotated).
        """
        actor = _clean_name(actor, "actor")
        if grace is not None and grace <= timedelta(0):
            raise InvalidInput(f"grace {format_duration(grace)!r} must be longer than zero")
        now = utcnow()
        with self.db.session() as session:
            old = self._get(session, key_id)
            status = key_status(old, now)
            if status not in WORKING_STATUSES:
                raise Conflict(f"API key {old.id} is {status}; only an active key can be rotated")
            plaintext, token = self._fresh_token(session)
            new = ApiKey(
                id=token.lookup_id,
                name=old.name,
                secret_hash=self.hash_key(plaintext),
                scopes=old.scopes,
                rate_limit=old.rate_limit,
                created_at=now,
                expires_at=old.expires_at,
                rotated_from=old.id,
                legacy=False,
            )
            session.add(new)
            old.rotated_to = new.id
            if grace is None:
                old.revoked_at = now
                stops = "at once"
            else:
                old.grace_until = now + grace
                stops = f"at {old.grace_until.isoformat()} (grace {format_duration(grace)})"
            record_event(session, now, "rotated", old, actor, f"replaced by {new.id}; old key stops {stops}")
            record_event(session, now, "created", new, actor, f"rotation of {old.id}")
            info = self._info(new, now)
            old_info = self._info(old, now)
        self.forget_cache()
        log.info("API key %s rotated to %s by %s", old_info.id, info.id, actor)
        self._changed("rotated", old_info, actor, new_id=info.id)
        return CreatedKey(plaintext, info)

    def revoke(self, key_id: str, actor: str = "cli") -> KeyInfo:
        """Stop a key now (also a rotating one). Raises NotFound, or Conflict when already revoked."""
        actor = _clean_name(actor, "actor")
        now = utcnow()
        with self.db.session() as session:
            row = self._get(session, key_id)
            if key_status(row, now) == "revoked":
                raise Conflict(f"API key {row.id} is already revoked")
            row.revoked_at = now
            record_event(session, now, "revoked", row, actor, None)
            info = self._info(row, now)
        self.forget_cache()
        log.info("API key %s (%s) revoked by %s", info.id, info.name, actor)
        self._changed("revoked", info, actor)
        return info

    def set_limit(self, key_id: str, limit: str, actor: str = "cli") -> KeyInfo:
        """Change a key's rate limit (``60/minute`` style).

        Raises InvalidInput (bad limit), NotFound, or Conflict (the key is revoked).
        """
        actor = _clean_name(actor, "actor")
        text = self._check_limit(limit)
        now = utcnow()
        with self.db.session() as session:
            row = self._get(session, key_id)
            if key_status(row, now) == "revoked":
                raise Conflict(f"API key {row.id} is revoked; its limit can no longer change")
            before = row.rate_limit or f"default ({self.settings.default_rate_limit})"
            row.rate_limit = text
            record_event(session, now, "rate_limit_changed", row, actor, f"{before} -> {text}")
            info = self._info(row, now)
        self.forget_cache()
        log.info("API key %s rate limit set to %s by %s", info.id, text, actor)
        self._changed("rate_limit_changed", info, actor)
        return info

    def import_legacy(self, actor: str = "cli", name: str = "legacy API_KEY") -> KeyInfo:
        """Store the hash of the ``API_KEY`` variable as a database key (memory:read, memory:write).

        From then on the database row decides (revoke it to stop the old key). Raises
        InvalidInput when API_KEY is not set, Conflict when it was already imported.
        """
        actor = _clean_name(actor, "actor")
        name = _clean_name(name)
        legacy = self.settings.legacy_api_key
        if not legacy:
            raise InvalidInput("API_KEY is not set, so there is no legacy key to import")
        digest = self.hash_key(legacy)
        now = utcnow()
        with self.db.session() as session:
            existing = session.scalars(
                sa.select(ApiKey).where(ApiKey.legacy.is_(True), ApiKey.secret_hash == digest)
            ).first()
            if existing is not None:
                raise Conflict(f"API_KEY was already imported as key {existing.id}")
            self._check_name_free(session, name, now)
            row = ApiKey(
                id=keyformat.new_lookup_id(),
                name=name,
                secret_hash=digest,
                scopes=" ".join(LEGACY_SCOPES),
                rate_limit=None,
                created_at=now,
                legacy=True,
            )
            session.add(row)
            record_event(
                session, now, "legacy_imported", row, actor, "hash of API_KEY moved into the database"
            )
            info = self._info(row, now)
        self.forget_cache()
        log.info("legacy API_KEY imported as key %s by %s", info.id, actor)
        self._changed("legacy_imported", info, actor)
        return info

    def _check_limit(self, limit: str) -> str:
        item = parse_limit(limit)
        if item.amount > MAX_KEY_LIMIT:  # the cap of limit_text
            raise InvalidInput(
                f"rate limit {str(limit).strip()!r}: at most {MAX_KEY_LIMIT:,} requests per window for one key"
            )
        return str(limit).strip()

    def _check_name_free(self, session: Session, name: str, now: datetime) -> None:
        for row in session.scalars(sa.select(ApiKey).where(ApiKey.name == name)):
            if key_status(row, now) in WORKING_STATUSES:
                raise Conflict(f"an active API key named {name!r} already exists ({row.id})")

    def _fresh_token(self, session: Session) -> tuple[str, keyformat.Token]:
        while True:
            plaintext, token = keyformat.new_token()
            if session.get(ApiKey, token.lookup_id) is None:
                return plaintext, token

    def _changed(self, action: str, info: KeyInfo, actor: str, **extra: Any) -> None:
        if self.events is None:
            return
        payload = {
            "action": action,
            "id": info.id,
            "name": info.name,
            "status": info.status,
            "scopes": list(info.scopes),
            "rate_limit": info.rate_limit,
            "actor": actor,
            **extra,
        }
        try:
            self.events.publish("key", payload)
        except Exception:  # events are best effort: a key change never fails on them
            log.warning("publishing the key event failed", exc_info=True)

    def _record_expiries(self) -> None:
        record_expiries(self.db)
