"""Verifying API keys: the hot path of every request.

* A malformed token (shape or checksum, see :mod:`jamey_engine.keys.keyformat`) is refused before
  any database query.
* A key is found by its public lookup id and its hash compared in constant time; only a hash is
  stored (SHA-256, or HMAC-SHA256 with ``JAMEY_KEY_PEPPER``).
* Answers about keys that exist (accepted, revoked, expired) are cached in-process, keyed by a
  hash of the presented key, for ``settings.key_cache_seconds`` (default 2 s) counted from when
  the database was asked. So a revocation, rotation or limit change committed by ANY process is
  honoured by every other process at most ``key_cache_seconds`` after its commit (the process
  that made the change: at once). A key's own expiry and grace end apply exactly on time, cache
  or not.
* "Unknown" answers (a well-formed token whose lookup id has no row, or whose secret does not
  match) go to a negative cache of their own: an LRU of at most ``NEGATIVE_CACHE_MAX_ENTRIES``
  entries, each trusted for ``settings.key_negative_cache_seconds`` (default 5 s). A flood of
  unknown keys therefore never pushes valid keys out of the positive cache. Repeats of one
  unknown key cost no query; and when more than ``UNKNOWN_LOOKUPS_PER_SECOND`` distinct unknown
  ids were looked up in the last second (a flood of random keys), an id is first checked
  against this process's list of every key id (one query, reloaded at most once per
  ``key_negative_cache_seconds``), so such a flood costs a bounded number of queries per second.
  A key created in this process is known at once (``KeyManager.create`` calls
  :meth:`KeyVerifier.forget_unknown`); one created (or brought back by a restore) in ANOTHER
  process works here at most ``key_negative_cache_seconds`` after its commit, and at once
  unless this process was told it was unknown, or was flooded, in that time.
* Random secrets presented with a KNOWN lookup id (the id is not secret: it shows in lists and
  logs) are refused from the stored hash of that id's row, remembered for ``key_cache_seconds``
  from when it was read (a bounded LRU of ``CACHE_MAX_ENTRIES`` ids): such a flood costs one
  query per id per cache period, not one per guess, and never touches the positive cache.
* Last-used times are kept in memory and written in one batch at most every
  ``LAST_USED_FLUSH_SECONDS`` (from a thread of its own: a key check never waits for a
  write) and when the database closes: never a write per request.
* The deprecated ``API_KEY`` variable still authenticates (memory:read and memory:write, the
  default limit, one deprecation warning per process) until it is imported; an imported legacy
  key is then judged by its database row, found by hash (a lookup refreshed at most once per
  cache period, so garbage input costs at most one query per period).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from jamey_engine.config import Settings
from jamey_engine.db import Database
from jamey_engine.durations import utcnow
from jamey_engine.errors import KeyRejected, RejectReason
from jamey_engine.keys import keyformat
from jamey_engine.models import TABLES, ApiKey

log = logging.getLogger(__name__)

LEGACY_SCOPES = ("memory:read", "memory:write")
LAST_USED_FLUSH_SECONDS = 5.0
CACHE_MAX_ENTRIES = 10_000
#: Most "unknown" answers remembered (an LRU apart from the positive cache).
NEGATIVE_CACHE_MAX_ENTRIES = 4_096
#: Database lookups of unknown key ids per second before ids are checked against the id list.
UNKNOWN_LOOKUPS_PER_SECOND = 20

_KEYS = TABLES[0]
_legacy_warned = False  # one deprecation warning per process


@dataclass(frozen=True)
class VerifiedKey:
    """Who a verified request is: key id and name, its scopes and effective rate limit."""

    id: str
    name: str
    scopes: tuple[str, ...]
    rate_limit: str
    legacy: bool = False

    def has_scope(self, scope: str) -> bool:
        """True when the key carries ``scope``."""
        return scope in self.scopes


@dataclass
class _CacheEntry:
    fresh_until: float  # time.monotonic(): when the database must be asked again
    stops_at: float | None  # time.time(): the key's own expiry or grace end
    key: VerifiedKey | None
    reason: RejectReason | None  # why it is refused (set exactly when key is None)


class KeyVerifier:
    """Verifies presented keys against the database, with the cache and batched last-used times.

    Thread-safe. ``on_expired`` is called (outside the cache) the first time an expired key is
    presented, so its expiry can be audited.
    """

    def __init__(
        self, db: Database, settings: Settings, on_expired: Callable[[], None] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.cache_seconds = settings.key_cache_seconds
        self.on_expired = on_expired
        self._pepper = settings.key_pepper.encode() if settings.key_pepper else b""
        self._cache: dict[bytes, _CacheEntry] = {}
        self.negative_seconds = settings.key_negative_cache_seconds
        # b"id:" + lookup id (no such row) or the presented key's hash (wrong secret) -> the
        # time.monotonic() until which "unknown" is trusted; least recently used first.
        self._unknown: OrderedDict[bytes, float] = OrderedDict()
        self._unknown_lock = threading.Lock()
        self._unknown_lookups: deque[float] = deque(maxlen=UNKNOWN_LOOKUPS_PER_SECOND)
        self._known_ids: frozenset[str] = frozenset()
        self._known_ids_until = 0.0  # time.monotonic(): when the id list must be reloaded
        self._unknown_generation = 0  # bumped by forget_unknown: a list read before is stale
        # lookup id -> (the row's stored hash, time.monotonic() until which it is trusted): a
        # wrong secret for a known id is refused from here without a query; least recent first.
        self._id_hashes: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._legacy_rows: dict[str, str] = {}  # hash -> key id of imported legacy keys
        self._legacy_fresh_until = 0.0
        self._pending_last_used: dict[str, datetime] = {}
        self._last_flush = time.monotonic()
        self._flush_lock = threading.Lock()
        self.verification_counts: Counter[str] = Counter()  # result -> count, for metrics
        db.on_close(self.flush_last_used)

    def hash_key(self, plaintext: str) -> str:
        """The stored form of a key: hex HMAC-SHA256 with the pepper, or SHA-256 without one."""
        data = plaintext.encode()
        if self._pepper:
            return hmac.new(self._pepper, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()

    def pending_last_used(self, key_id: str) -> datetime | None:
        """The last-used time of ``key_id`` seen by this process and not yet written, if any."""
        return self._pending_last_used.get(key_id)

    def forget(self) -> None:
        """Drop every cached answer (after a change made by this process)."""
        self._cache.clear()
        with self._unknown_lock:
            self._id_hashes.clear()
        self._legacy_fresh_until = 0.0
        self.forget_unknown()

    def forget_unknown(self) -> None:
        """Drop every cached "unknown" answer and the id list (after this process made a key)."""
        with self._unknown_lock:
            self._unknown.clear()
            self._known_ids_until = 0.0
            self._unknown_generation += 1

    def verify(self, plaintext: str | None) -> VerifiedKey:
        """Who ``plaintext`` is, or KeyRejected(reason) with reason in missing, malformed,
        unknown, expired, revoked.

        Answers from the cache for up to ``key_cache_seconds``; malformed tokens never reach the
        database. Records the last-used time in memory (flushed in batches).
        """
        if not plaintext:
            return self._reject("missing")
        cache_key = hashlib.sha256(plaintext.encode()).digest()
        entry = self._cache.get(cache_key)
        if entry is not None and time.monotonic() < entry.fresh_until:
            if entry.key is not None and (entry.stops_at is None or time.time() < entry.stops_at):
                return self._accept(entry.key, cached=True)
            if entry.key is None:
                assert entry.reason is not None  # set exactly when key is None
                return self._reject(entry.reason, cached=True)
        if keyformat.looks_like_token(plaintext):
            token = keyformat.parse_token(plaintext)
            if token is None:
                return self._reject("malformed")
            return self._verify_token(plaintext, token.lookup_id, cache_key)
        return self._verify_legacy(plaintext, cache_key)

    def verify_cached(self, plaintext: str) -> VerifiedKey | None:
        """Who ``plaintext`` is when the cache can answer alone, else None (call ``verify`` then).

        Never touches the database, not even for the batched last-used write: for callers that
        must not block, such as the service's event loop. A cached rejection raises KeyRejected
        as ``verify`` would. (Added by the service helper.)
        """
        if not plaintext:
            return None
        cache_key = hashlib.sha256(plaintext.encode()).digest()
        entry = self._cache.get(cache_key)
        if entry is None or time.monotonic() >= entry.fresh_until:
            now = time.monotonic()
            if self._known_unknown(plaintext, cache_key, now):
                return self._reject("unknown", cached=True)
            token = keyformat.parse_token(plaintext) if keyformat.looks_like_token(plaintext) else None
            if token is not None and self._wrong_secret_for_known_id(token.lookup_id, plaintext, now):
                self._remember_unknown(cache_key, now)
                return self._reject("unknown", cached=True)
            return None
        if entry.key is None:
            assert entry.reason is not None  # set exactly when key is None
            return self._reject(entry.reason, cached=True)
        if entry.stops_at is not None and time.time() >= entry.stops_at:
            return None
        self.verification_counts["ok"] += 1
        self._pending_last_used[entry.key.id] = utcnow()
        return entry.key

    def _verify_token(self, plaintext: str, lookup_id: str, cache_key: bytes) -> VerifiedKey:
        asked_at = time.monotonic()
        if self._known_unknown(plaintext, cache_key, asked_at):
            return self._reject("unknown", cached=True)
        if self._wrong_secret_for_known_id(lookup_id, plaintext, asked_at):
            self._remember_unknown(cache_key, asked_at)
            return self._reject("unknown", cached=True)
        if self._flooded(asked_at) and lookup_id not in self._key_ids(asked_at):
            self._remember_unknown(b"id:" + lookup_id.encode(), asked_at)
            return self._reject("unknown")
        with self.db.connect() as conn:
            row = conn.execute(sa.select(_KEYS).where(_KEYS.c.id == lookup_id)).first()
        if row is None:
            self._unknown_lookups.append(asked_at)
            self._remember_unknown(b"id:" + lookup_id.encode(), asked_at)
            return self._reject("unknown")
        return self._judge(row, plaintext, cache_key, asked_at, legacy=False)

    # -- the negative cache --------------------------------------------------------------------
    def _known_unknown(self, plaintext: str, cache_key: bytes, now: float) -> bool:
        """True when a fresh "unknown" answer is cached for this key or its lookup id."""
        if not self._unknown:
            return False
        token = keyformat.parse_token(plaintext) if keyformat.looks_like_token(plaintext) else None
        names = (cache_key,) if token is None else (cache_key, b"id:" + token.lookup_id.encode())
        with self._unknown_lock:
            for name in names:
                fresh_until = self._unknown.get(name)
                if fresh_until is None:
                    continue
                if now < fresh_until:
                    self._unknown.move_to_end(name)
                    return True
                del self._unknown[name]
        return False

    def _wrong_secret_for_known_id(self, lookup_id: str, plaintext: str, now: float) -> bool:
        """True when ``lookup_id``'s row was read within ``key_cache_seconds`` and its stored
        hash is not this key's (a guessed secret for a known id: refused without a query)."""
        with self._unknown_lock:
            known = self._id_hashes.get(lookup_id)
            if known is None:
                return False
            if now >= known[1]:
                del self._id_hashes[lookup_id]
                return False
            self._id_hashes.move_to_end(lookup_id)
        return not hmac.compare_digest(known[0], self.hash_key(plaintext))

    def _remember_id_hash(self, lookup_id: str, secret_hash: str, asked_at: float) -> None:
        with self._unknown_lock:
            self._id_hashes[lookup_id] = (secret_hash, asked_at + self.cache_seconds)
            self._id_hashes.move_to_end(lookup_id)
            while len(self._id_hashes) > CACHE_MAX_ENTRIES:
                self._id_hashes.popitem(last=False)

    def _remember_unknown(self, name: bytes, asked_at: float) -> None:
        with self._unknown_lock:
            self._unknown[name] = asked_at + self.negative_seconds
            self._unknown.move_to_end(name)
            while len(self._unknown) > NEGATIVE_CACHE_MAX_ENTRIES:
                self._unknown.popitem(last=False)

    def _flooded(self, now: float) -> bool:
        """True when the last UNKNOWN_LOOKUPS_PER_SECOND lookups of unknown ids all fell
        within the last second."""
        lookups = self._unknown_lookups
        return len(lookups) == lookups.maxlen and now - lookups[0] < 1.0

    def _key_ids(self, now: float) -> frozenset[str]:
        """Every key id in the database, as of at most ``key_negative_cache_seconds`` ago."""
        if now >= self._known_ids_until:
            generation = self._unknown_generation
            with self.db.connect() as conn:
                ids = frozenset(conn.execute(sa.select(_KEYS.c.id)).scalars())
            with self._unknown_lock:
                self._known_ids = ids
                # A key made here during the query may be missing from it: ask again next time.
                if generation == self._unknown_generation:
                    self._known_ids_until = now + self.negative_seconds
            return ids
        return self._known_ids

    def _verify_legacy(self, plaintext: str, cache_key: bytes) -> VerifiedKey:
        asked_at = time.monotonic()
        digest = self.hash_key(plaintext)
        if asked_at >= self._legacy_fresh_until:
            with self.db.connect() as conn:
                rows = conn.execute(sa.select(ApiKey.secret_hash, ApiKey.id).where(ApiKey.legacy.is_(True)))
                self._legacy_rows = {secret_hash: key_id for secret_hash, key_id in rows}
            self._legacy_fresh_until = asked_at + self.cache_seconds
        key_id = self._legacy_rows.get(digest)
        if key_id is not None:
            with self.db.connect() as conn:
                row = conn.execute(sa.select(_KEYS).where(_KEYS.c.id == key_id)).first()
            return self._judge(row, plaintext, cache_key, asked_at, legacy=True)
        legacy = self.settings.legacy_api_key
        if legacy and hmac.compare_digest(digest, self.hash_key(legacy)):  # equal lengths: no length leak
            _warn_legacy()
            key = VerifiedKey(
                id="legacy",
                name="legacy API_KEY",
                scopes=LEGACY_SCOPES,
                rate_limit=self.settings.default_rate_limit,
                legacy=True,
            )
            self._remember(cache_key, asked_at, key, None, None)
            return self._accept(key, cached=False, record=False)
        return self._reject("malformed")

    def _judge(
        self, row: Any, plaintext: str, cache_key: bytes, asked_at: float, *, legacy: bool
    ) -> VerifiedKey:
        if row is not None and not legacy:
            self._remember_id_hash(row.id, row.secret_hash, asked_at)
        if row is None or not hmac.compare_digest(row.secret_hash, self.hash_key(plaintext)):
            self._remember_unknown(cache_key, asked_at)
            return self._reject("unknown")
        now = utcnow()
        stops = [t for t in (row.expires_at, row.grace_until) if t is not None]
        reason: RejectReason
        if (row.revoked_at is not None and row.revoked_at <= now) or (
            row.grace_until is not None and row.grace_until <= now
        ):
            reason = "revoked"
        elif row.expires_at is not None and row.expires_at <= now:
            reason = "expired"
        else:
            key = VerifiedKey(
                id=row.id,
                name=row.name,
                scopes=tuple(row.scopes.split()),
                rate_limit=row.rate_limit or self.settings.default_rate_limit,
                legacy=legacy,
            )
            if legacy:
                _warn_legacy()
            self._remember(cache_key, asked_at, key, min(stops).timestamp() if stops else None, None)
            return self._accept(key, cached=False)
        self._remember(cache_key, asked_at, None, None, reason)
        if reason == "expired" and row.expiry_recorded_at is None and self.on_expired is not None:
            self.on_expired()
        return self._reject(reason)

    def _remember(
        self,
        cache_key: bytes,
        asked_at: float,
        key: VerifiedKey | None,
        stops_at: float | None,
        reason: RejectReason | None,
    ) -> None:
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            try:
                del self._cache[next(iter(self._cache))]
            except (StopIteration, KeyError, RuntimeError):
                self._cache.clear()
        # Fresh from when the question was ASKED: a revocation committed during the query is
        # then still honoured within cache_seconds of its commit.
        self._cache[cache_key] = _CacheEntry(asked_at + self.cache_seconds, stops_at, key, reason)

    def _accept(self, key: VerifiedKey, *, cached: bool, record: bool = True) -> VerifiedKey:
        self.verification_counts["ok"] += 1
        if record:
            self._pending_last_used[key.id] = utcnow()
            if time.monotonic() - self._last_flush >= LAST_USED_FLUSH_SECONDS:
                self._flush_in_a_thread()
        return key

    def _flush_in_a_thread(self) -> None:
        # Never inline: a write here would make this key check wait behind whoever holds the
        # database's write lock (SQLite has one writer: a retention apply, a 1,000-alert webhook).
        self._last_flush = time.monotonic()  # one flush thread per period
        threading.Thread(target=self.flush_last_used, name="jamey-last-used-flush").start()

    def _reject(self, reason: RejectReason, *, cached: bool = False) -> VerifiedKey:
        self.verification_counts[reason] += 1
        raise KeyRejected(reason)

    def flush_last_used(self) -> None:
        """Write the batched last-used times (one statement for all keys). Never raises."""
        if not self._flush_lock.acquire(blocking=False):
            return  # another thread is flushing right now
        try:
            self._last_flush = time.monotonic()
            pending, self._pending_last_used = self._pending_last_used, {}
            if not pending:
                return
            statement = (
                sa.update(ApiKey)
                .where(
                    ApiKey.id == sa.bindparam("key_id"),
                    sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < sa.bindparam("used_at")),
                )
                .values(last_used_at=sa.bindparam("used_at"))
            )
            try:
                with self.db.begin() as conn:
                    conn.execute(statement, [{"key_id": k, "used_at": t} for k, t in pending.items()])
            except Exception:
                log.warning("could not record when %d API key(s) were last used", len(pending), exc_info=True)
        finally:
            self._flush_lock.release()


def _warn_legacy() -> None:
    global _legacy_warned
    if not _legacy_warned:
        _legacy_warned = True
        log.warning(
            "a request used the deprecated API_KEY variable; create database keys "
            "(`jamey keys create`) or move it with `jamey keys import-legacy`"
        )
