"""Local pre-admission for Redis counters: each process spends leases of hits reserved in Redis.

A decision on Redis costs a round trip (and the server's CPU for the script); at thousands of
requests a second that is most of a request's cost. So a process reserves a **lease** of up to
``JAMEY_RATE_LIMIT_LEASE`` hits of a counter in one script call (``LEASE_LUA``) and admits the
next requests from it locally, under a lock held for microseconds.

Why it is exact (never more than ``limit`` hits in any window, over all processes):

* Redis keeps, per counter, a sorted set of leases (member ``<lease id>:<hits>``, score the time
  the lease **ends**) and their total. A lease is granted only when the hits in the window, the
  unspent hits of every live lease included, stay within the limit.
* A lease's hits are spent only before it ends (``LeaseBook.spend`` checks the wall clock), and
  they are counted in Redis at the lease's end time, at or after every real hit it admitted: a
  real hit at ``h`` is counted until at least ``h + expiry``. So at any instant the admitted hits
  of the last ``expiry`` seconds are among the counted ones, and those never exceed the limit.
* Near the limit the grant shrinks: ``min(lease, max(1, (limit - used) // LEASE_SHARE))``, so
  the last hits of a window go one per request, decided in Redis, as without leases. A grant of
  one is the asking request's own hit: counted from now, with no life to spend it later.

Unused hits are not lost: a lease lives ``lease_seconds(expiry)`` (a tenth of the window, at
most ``MAX_LEASE_SECONDS``); then the limiter's releaser thread hands its unspent hits back
(``RELEASE_LUA``), so another process is not refused for hits nobody will spend. A process that
dies without releasing leaves them counted until the lease's end plus the window: they expire
with the window. The cost of the bound: unspent leased hits count against the limit for up to a
lease's life, and a key's ``Reset`` is up to a lease's life later than its oldest real hit's.

A request refused by one limit counts against neither: a key lease taken in the same call
stays unspent and goes back with its release.

On an event loop (``RateLimiter.ahit``) one request at a time asks for a counter's lease: the
requests that find none while it asks wait for its answer and spend its grant, and ask Redis
themselves only if that left them nothing (a grant of one, a refusal). Otherwise every request
that arrived while a lease was running out would lease hits of its own for the releaser to hand
back.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field

#: A lease lives a tenth of its counter's window, and at most this long (seconds).
MAX_LEASE_SECONDS = 1.0
#: A grant is at most the counter's room left divided by this, so leases shrink near the limit.
LEASE_SHARE = 8

# One lease request, atomic in Redis.
# KEYS: per counter, its lease set and its total (2 keys a counter; the key's counter first).
# ARGV: now, lease id, then per counter: limit, expiry (s), wanted hits, lease share, the lease's
#       end (its score).
# Reply: per counter {granted, oldest lease end in the window (string), hits counted after the
#        grant}. A counter asked for hits that has none left refuses the request: then no
#        counter grants any (the first refusing counter is the one whose "granted" is 0 while
#        asked; the key's counter comes first).
LEASE_LUA = """
local now, id = tonumber(ARGV[1]), ARGV[2]
local counters = {}
local refused = false
for i = 1, #KEYS / 2 do
    local leases, total = KEYS[2 * i - 1], KEYS[2 * i]
    local base = 2 + (i - 1) * 5
    local limit, expiry = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
    local want, share = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
    local floor = now - expiry
    local used = tonumber(redis.call('get', total) or '0')
    local gone = redis.call('zrangebyscore', leases, '-inf', floor)
    if #gone > 0 then
        local hits = 0
        for _, member in ipairs(gone) do
            hits = hits + tonumber(string.match(member, ':(%d+)$'))
        end
        redis.call('zremrangebyscore', leases, '-inf', floor)
        used = math.max(0, used - hits)
        if used == 0 then
            redis.call('del', total)
        else
            redis.call('decrby', total, hits)
        end
    end
    local granted = 0
    if want > 0 and not refused then
        granted = math.min(want, math.max(1, math.floor((limit - used) / share)), limit - used)
        if granted <= 0 then
            granted = 0
            refused = true
        end
    end
    counters[i] = {leases, total, expiry, tonumber(ARGV[base + 5]), granted, used}
end
-- Granted only when every counter asked grants: a refused request is counted nowhere.
local reply = {}
for i, c in ipairs(counters) do
    local leases, total, expiry, stamp, granted, used = c[1], c[2], c[3], c[4], c[5], c[6]
    if refused then
        granted = 0
    end
    if granted > 0 then
        -- A grant of one is the asking request's own hit, made now: counted from now, and
        -- never spent later (the client gives it no life).
        if granted == 1 then
            stamp = now
        end
        redis.call('zadd', leases, stamp, id .. ':' .. granted)
        used = redis.call('incrby', total, granted)
        local ttl = math.ceil((stamp - now + expiry) * 1000) + 1000
        if redis.call('pttl', leases) < ttl then
            redis.call('pexpire', leases, ttl)
        end
        redis.call('pexpire', total, redis.call('pttl', leases))
    end
    local oldest = redis.call('zrange', leases, 0, 0, 'WITHSCORES')[2] or stamp
    reply[i] = {granted, oldest, used}
end
return reply
"""

# A lease's unspent hits handed back: it stays in the set with the hits it spent (still counted
# at its end time), or leaves it when it spent none. A lease already gone (expired with the
# window) is left alone. KEYS: the lease set, the total. ARGV: the member, hits spent, the end.
RELEASE_LUA = """
local member, spent = ARGV[1], tonumber(ARGV[2])
if redis.call('zrem', KEYS[1], member) == 1 then
    local granted = tonumber(string.match(member, ':(%d+)$'))
    if spent > 0 then
        redis.call('zadd', KEYS[1], ARGV[3], string.match(member, '^(.*):%d+$') .. ':' .. spent)
    end
    if redis.call('exists', KEYS[2]) == 1 then
        redis.call('decrby', KEYS[2], granted - spent)
    end
end
return 0
"""


def lease_seconds(expiry: float) -> float:
    """How long a lease of a counter with an ``expiry``-second window may be spent."""
    return min(MAX_LEASE_SECONDS, expiry / 10)


@dataclass
class Lease:
    """Hits of one counter reserved in Redis, spent here until ``ends`` (epoch seconds)."""

    member: str  # "<lease id>:<granted>", as in Redis
    keys: tuple[str, str]  # the counter's lease set and total
    granted: int
    left: int
    ends: float
    used_after: int  # the counter's hits in Redis right after the grant
    reset_at: float  # the counter's oldest lease end + expiry, at the grant


@dataclass
class LeaseBook:
    """This process's leases, by counter (the lease set's Redis key). Thread-safe."""

    leases: dict[str, list[Lease]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _token: str = field(default_factory=lambda: f"{os.getpid()}.{secrets.token_hex(4)}")

    def __post_init__(self) -> None:
        # A forked child must not spend its parent's leases (the parent spends them too).
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(ref))

    def next_id(self) -> str:
        """A lease id no other process or lease shares."""
        return f"{self._token}.{next(self._ids)}"

    def spend(self, counter: str, now: float) -> Lease | None:
        """Take one hit of a live lease of ``counter``; None when it has none (ask Redis)."""
        for lease in self.leases.get(counter, ()):
            if lease.left > 0 and now < lease.ends:
                lease.left -= 1
                return lease
        return None

    def has(self, counter: str, now: float) -> bool:
        """Whether ``counter`` has a live lease with a hit left (nothing taken)."""
        return any(lease.left > 0 and now < lease.ends for lease in self.leases.get(counter, ()))

    def add(self, counter: str, lease: Lease) -> None:
        self.leases.setdefault(counter, []).append(lease)

    def refund(self, lease: Lease) -> None:
        """Give back one hit taken from ``lease`` (the other limit refused the request)."""
        lease.left += 1

    def ended(self, now: float, everything: bool = False) -> list[Lease]:
        """Remove and return the leases that ended (all of them with ``everything``)."""
        done: list[Lease] = []
        with self.lock:
            for counter in list(self.leases):
                live: list[Lease] = []
                for lease in self.leases[counter]:
                    (done if everything or now >= lease.ends or lease.left == 0 else live).append(lease)
                if live:
                    self.leases[counter] = live
                else:
                    del self.leases[counter]
        return done

    def forget(self, counter: str) -> None:
        """Drop ``counter``'s leases (its Redis counter was cleared)."""
        with self.lock:
            self.leases.pop(counter, None)

    def __len__(self) -> int:
        return sum(len(leases) for leases in self.leases.values())


def _forked(ref: weakref.ReferenceType[LeaseBook]) -> None:
    book = ref()
    if book is not None:
        book.leases = {}
        book.lock = threading.Lock()
        book._token = f"{os.getpid()}.{secrets.token_hex(4)}"


def release_args(lease: Lease) -> tuple[list[str], list[str | int | float]]:
    """RELEASE_LUA's keys and arguments for ``lease``'s unspent hits."""
    return list(lease.keys), [lease.member, lease.granted - lease.left, lease.ends]


def wall_clock() -> float:
    return time.time()
