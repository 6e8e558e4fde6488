"""The outcome of one rate-limit check (``Decision``), with the response headers it implies."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """The outcome of one request's check, with what the response headers need.

    ``scope`` names the limit that refused ("key" or "global"), None when admitted.
    ``limit``/``remaining``/``reset_at`` describe the key's limit when admitted, the refusing
    limit otherwise; ``reset_at`` is epoch seconds; ``retry_after`` is whole seconds (0 when
    admitted). ``degraded`` is True when the storage failed and the request was admitted
    anyway (fail open).
    """

    allowed: bool
    scope: str | None
    limit: int
    remaining: int
    reset_at: float
    retry_after: int
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """The conventional ``X-RateLimit-*`` (and, when refused, ``Retry-After``) headers."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers
