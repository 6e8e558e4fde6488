"""The request formats the OpenAPI schema states and the handlers enforce, defined once.

Each pattern is enforced by the request models (so the schema and the handlers cannot disagree:
what the schema calls valid is accepted, what it calls invalid is refused with 422), and each is
a subset of what the engine's own parsers accept.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from jamey_engine.durations import STORED_YEARS_PATTERN

# A memory id: a UUID in its canonical form.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A rate limit: a whole amount above zero per second, minute, hour or day (``120/minute``).
RATE_LIMIT_PATTERN = r"^[1-9][0-9]{0,8}/(second|minute|hour|day)$"
# A duration of up to four parts, the first above zero (``90d``, ``1h30m``): never zero, never
# so long that a date overflows.
DURATION_PATTERN = r"^[1-9][0-9]{0,3}[smhdw]([0-9]{1,4}[smhdw]){0,3}$"
# A retention max_age: whole weeks, days, hours or minutes, largest unit first, each unit once
# (``30d``, ``36h``, ``2w``, ``1d12h``, ``90m``). The first part makes it at least the minimum of
# 1h (a whole week, day or hour, or 60 minutes and more) and the digits keep it within the 300
# years the policy allows (at most 100,485 days).
MAX_AGE_PATTERN = (
    r"^(?:[1-9][0-9]{0,3}w(?:[0-9]{1,3}d)?(?:[0-9]{1,4}h)?(?:[0-9]{1,5}m)?"
    r"|[1-9][0-9]{0,4}d(?:[0-9]{1,4}h)?(?:[0-9]{1,5}m)?"
    r"|[1-9][0-9]{0,5}h(?:[0-9]{1,5}m)?"
    r"|(?:[6-9][0-9]|[1-9][0-9]{2,6})m)$"
)
# A retention max_bytes as text: a whole number of MB, GB, TB (powers of 1000) or MiB, GiB, TiB
# (powers of 1024) of at least 1MiB (so 2MB and up); the digits keep it under the maximum of
# 2**53 - 1 bytes (at most 999TiB).
MAX_BYTES_PATTERN = (
    r"^(?:(?:[2-9]|[1-9][0-9]{1,8})MB|[1-9][0-9]{0,8}MiB"
    r"|[1-9][0-9]{0,5}(?:GB|GiB)|[1-9][0-9]{0,2}(?:TB|TiB))$"
)
# An ISO 8601 date-time in the years the index stores (1970 to 2261).
TIMESTAMP_PATTERN = rf"^{STORED_YEARS_PATTERN}-"
# Text with at least one character that is not white space (jamey_engine.text says what blank is).
NOT_BLANK_PATTERN = r"\S"


def _iso_text(value: Any) -> Any:
    """A timestamp must come as ISO 8601 text (not a number of seconds), in the stored years."""
    if value is None:
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time text, e.g. 2026-01-31T12:00:00Z")
    if not re.match(TIMESTAMP_PATTERN, value):
        raise ValueError("must be a date-time in the years 1970 to 2261 (the index stores dates up to 2262)")
    return value


# A stored memory's timestamp: ISO 8601 text in the years the index stores, stated in the schema.
Timestamp = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}),
]


def content_limits(schema: dict[str, Any], max_content_bytes: int) -> None:
    """State the content size limit of this service (JAMEY_MAX_CONTENT_BYTES) in ``schema``:
    ``maxLength`` on every memory content field (characters; the limit itself is in UTF-8 bytes,
    which the descriptions say)."""
    for name in ("StoreBody", "BatchItem"):
        field = (
            schema.get("components", {}).get("schemas", {}).get(name, {}).get("properties", {}).get("content")
        )
        if field is not None:
            field["maxLength"] = max_content_bytes
