"""The limiter's decisions from leases of Redis counters (see ``ratelimit_lease``).

``LeaseDecisions`` is a part of ``RateLimiter`` (its base class), apart so the limiter's module
stays readable: spending a live lease, asking Redis for new ones (``LEASE_LUA``), reading the
reply into a Decision, and handing unspent hits back (a releaser thread, ``RELEASE_LUA``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from typing import Any, cast

import limits
from limits.storage import RedisStorage

from jamey_engine.keys.ratelimit_decision import Decision
from jamey_engine.keys.ratelimit_lease import LEASE_SHARE, Lease, LeaseBook, lease_seconds, release_args

log = logging.getLogger(__name__)

#: How often the releaser thread hands back the unspent hits of ended leases (seconds).
RELEASE_EVERY = 0.05


class LeaseDecisions:
    """Lease-based decisions; the attributes are RateLimiter's (set in its ``__init__``)."""

    lease: int
    global_limit: limits.RateLimitItem
    _book: LeaseBook | None
    _redis: RedisStorage
    _lease_script: Any
    _release_script: Any
    _redis_errors: Any
    _global_lease_keys: tuple[str, str]
    _global_expiry: int
    _failed_until: float
    _releaser: threading.Thread | None
    _closed: bool
    _lock: threading.Lock

    def _lease_keys(self, counter: str) -> tuple[str, str]:
        """A counter's lease set and total in Redis (apart from limits' own lists)."""
        name = self._redis.prefixed_key(f"lease:{counter}")
        return name, f"{name}:n"

    def _spend_lease(self, item: limits.RateLimitItem, counter: str) -> Decision | None:
        """A hit of this process's live leases of both counters, without Redis; None without."""
        book = cast(LeaseBook, self._book)
        now = time.time()
        name = self._lease_keys(counter)[0]
        with book.lock:
            lease = book.spend(name, now)
            if lease is None:
                return None
            if book.spend(self._global_lease_keys[0], now) is None:
                book.refund(lease)
                return None
        return self._admitted(item, lease)

    @staticmethod
    def _admitted(item: limits.RateLimitItem, lease: Lease) -> Decision:
        # Remaining: the counter's room at the grant, plus what this lease has not spent yet.
        remaining = max(0, item.amount - lease.used_after + lease.left)
        return Decision(True, None, item.amount, remaining, lease.reset_at, 0)

    def _lease_request(
        self, item: limits.RateLimitItem, counter: str, force: bool
    ) -> tuple[list[str], list[float | str], tuple[str, int, int, float, float]]:
        """LEASE_LUA's keys and arguments: a lease of each counter this process has none of
        (of both with ``force``); and what ``_leased`` needs to read the reply."""
        book = cast(LeaseBook, self._book)
        now = time.time()
        key_keys, glob_keys = self._lease_keys(counter), self._global_lease_keys
        expiry, glob = item.get_expiry(), self.global_limit
        with book.lock:
            want_key = self.lease if force or not book.has(key_keys[0], now) else 0
            want_glob = self.lease if force or not book.has(glob_keys[0], now) else 0
        ends, glob_ends = now + lease_seconds(expiry), now + lease_seconds(self._global_expiry)
        lease_id = book.next_id()
        args: list[float | str] = [now, lease_id]
        args += [item.amount, expiry, want_key, LEASE_SHARE, ends]
        args += [glob.amount, self._global_expiry, want_glob, LEASE_SHARE, glob_ends]
        return [*key_keys, *glob_keys], args, (lease_id, want_key, want_glob, ends, glob_ends)

    def _leased(
        self,
        item: limits.RateLimitItem,
        counter: str,
        ask: tuple[str, int, int, float, float],
        reply: Any,
    ) -> Decision | None:
        """The decision from LEASE_LUA's reply; None when a lease this process held when it
        asked ran out meanwhile (ask again, for both)."""
        lease_id, want_key, want_glob, ends, glob_ends = ask
        (key_granted, key_oldest, key_used), (glob_granted, glob_oldest, glob_used) = reply
        book = cast(LeaseBook, self._book)
        key_keys, glob_keys = self._lease_keys(counter), self._global_lease_keys
        expiry, glob = item.get_expiry(), self.global_limit
        now = time.time()

        def new_lease(
            keys: tuple[str, str], granted: Any, used: Any, oldest: Any, end: float, exp: int
        ) -> Lease:
            granted = int(granted)
            end = end if granted > 1 else now  # a grant of one is this hit's, counted from now
            return Lease(
                f"{lease_id}:{granted}", keys, granted, granted - 1, end, int(used), float(oldest) + exp
            )

        key_lease: Lease | None
        glob_lease: Lease | None
        with book.lock:
            # Asked and granted nothing: that counter is full (the key's is checked first).
            key_full = want_key and not int(key_granted) and int(key_used) >= item.amount
            if key_full or (want_glob and not int(glob_granted) and int(glob_used) >= glob.amount):
                # Another request of this process may have leased what Redis refused this one.
                key_lease = book.spend(key_keys[0], now)
                if key_lease is not None:
                    if book.spend(glob_keys[0], now) is not None:
                        return self._admitted(item, key_lease)
                    book.refund(key_lease)
                if key_full:
                    return self._refused(item, "key", float(key_oldest))
                return self._refused(glob, "global", float(glob_oldest))
            if int(key_granted):
                key_lease = new_lease(key_keys, key_granted, key_used, key_oldest, ends, expiry)
                book.add(key_keys[0], key_lease)
            else:
                key_lease = book.spend(key_keys[0], now)
            if int(glob_granted):
                glob_lease = new_lease(
                    glob_keys, glob_granted, glob_used, glob_oldest, glob_ends, self._global_expiry
                )
                book.add(glob_keys[0], glob_lease)
            else:
                glob_lease = book.spend(glob_keys[0], now)
            if key_lease is None or glob_lease is None:
                # A lease held when asking ran out meanwhile: give back what was taken, ask again.
                for taken in (key_lease, glob_lease):
                    if taken is not None:
                        book.refund(taken)
                self._start_releaser()
                return None
        self._start_releaser()
        if self._failed_until:
            self._failed_until = 0.0
        return self._admitted(item, key_lease)

    def _refused(self, refused: limits.RateLimitItem, scope: str, oldest: float) -> Decision:
        reset_at = oldest + refused.get_expiry()
        return Decision(False, scope, refused.amount, 0, reset_at, max(1, math.ceil(reset_at - time.time())))

    def _decide_leased(self, item: limits.RateLimitItem, counter: str) -> Decision:
        decision = self._spend_lease(item, counter)
        if decision is not None:
            return decision
        for force in (False, True):
            keys, args, ask = self._lease_request(item, counter, force)
            try:
                reply = self._lease_script(keys, args)
            except self._redis_errors as err:
                raise limits.errors.StorageError(err) from err
            decision = self._leased(item, counter, ask, reply)
            if decision is not None:
                return decision
        raise AssertionError("a forced lease request always decides")  # pragma: no cover

    def _start_releaser(self) -> None:
        # Not alive: this process was forked from one whose releaser it did not inherit.
        if (self._releaser is None or not self._releaser.is_alive()) and not self._closed:
            with self._lock:
                if self._releaser is None or not self._releaser.is_alive():
                    self._releaser = threading.Thread(
                        target=_release_forever,
                        args=(weakref.ref(self),),
                        name="jamey-ratelimit-leases",
                        daemon=True,
                    )
                    self._releaser.start()

    def release_leases(self, everything: bool = False) -> int:
        """Hand back to Redis the unspent hits of this process's ended leases (of all its
        leases with ``everything``); returns how many leases had hits to hand back. A Redis
        error leaves them to expire with their window."""
        if self._book is None:
            return 0
        unspent = [lease for lease in self._book.ended(time.time(), everything) if lease.left > 0]
        for lease in unspent:
            keys, args = release_args(lease)
            try:
                self._release_script(keys, args)
            except self._redis_errors as err:
                log.debug(
                    "rate-limit lease release failed (%s); it expires with its window", type(err).__name__
                )
                break
        return len(unspent)


def _release_forever(ref: weakref.ReferenceType[LeaseDecisions]) -> None:
    while True:
        time.sleep(RELEASE_EVERY)
        limiter = ref()
        if limiter is None or limiter._closed:
            return
        try:
            limiter.release_leases()
        except Exception:  # a daemon must not die: unreleased hits expire anyway
            log.debug("rate-limit lease release failed", exc_info=True)
        del limiter
