"""Rate limits as text (``60/minute``): parsing and the caps on what one limit may allow.

Free of engine imports, so the settings (``config``) and the key limiter (``keys.ratelimit``) share
one parser and one set of caps without importing each other.
"""

from __future__ import annotations

import limits

from jamey_engine.errors import InvalidInput

#: Most requests one key's limit may allow per window: a key's own limit and
#: JAMEY_DEFAULT_RATE_LIMIT. (In memory, limits above keys.ratelimit_storage.EXACT_UP_TO count in
#: fixed sub-buckets, bounded memory; in Redis, leases keep about limit / lease entries.)
MAX_KEY_LIMIT = 100_000
#: Most requests JAMEY_GLOBAL_RATE_LIMIT may allow per window.
MAX_GLOBAL_LIMIT = 1_000_000


def parse_limit(text: str, *, field: str = "rate limit", most: int | None = None) -> limits.RateLimitItem:
    """Parse ``60/minute``-style text into one limit.

    Raises InvalidInput naming ``field`` and the value when it is not exactly one limit with an
    amount above zero, or (with ``most``) when it allows more than ``most`` requests per window.
    """
    raw = str(text).strip()
    try:
        items = limits.parse_many(raw)
    except ValueError:
        items = []
    if len(items) != 1:
        raise InvalidInput(
            f"{field} {text!r} is not a rate limit; use an amount and a period, e.g. 60/minute or 10/second"
        )
    if items[0].amount <= 0:
        raise InvalidInput(f"{field} {text!r} must allow at least one request")
    if most is not None and items[0].amount > most:
        raise InvalidInput(
            f"{field} {raw!r}: at most {most:,} requests per window (the counters of one window stay bounded)"
        )
    return items[0]
