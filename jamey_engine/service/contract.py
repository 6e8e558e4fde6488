"""The request formats the OpenAPI schema states and the handlers enforce, defined once.

Each pattern is enforced by the request models (so the schema and the handlers cannot disagree:
what the schema calls valid is accepted, what it calls invalid is refused with 400), and each is
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
# An ISO 8601 date-time in the years the index stores (1970 to 2261).
TIMESTAMP_PATTERN = rf"^{STORED_YEARS_PATTERN}-"
# Text with at least one character that is not white space.
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
