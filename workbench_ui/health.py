"""The service health probe the overview page shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from jamey_engine.redact import redact_url


@dataclass(frozen=True)
class Health:
    """The result of probing the service's /health endpoint."""

    url: str
    ok: bool
    status_code: int | None
    detail: str
    body: dict[str, Any] | None = None


def check_health(service_url: str, timeout: float = 2.0) -> Health:
    """GET ``<service_url>/health`` with a short timeout. Never raises: failures come back as
    ``Health(ok=False, detail=...)`` saying what went wrong."""
    target = service_url.rstrip("/") + "/health"
    url = redact_url(target)  # what the page shows: JAMEY_SERVICE_URL may carry user:password@
    try:
        response = httpx.get(target, timeout=timeout)
    except httpx.TimeoutException:
        return Health(url, False, None, f"no answer from {url} within {timeout:g}s")
    except httpx.HTTPError as err:
        return Health(
            url,
            False,
            None,
            f"cannot reach {url} ({type(err).__name__}); start the service with `jamey serve` or `make run`",
        )
    body: dict[str, Any] | None
    try:
        parsed = response.json()
        body = parsed if isinstance(parsed, dict) else {"body": parsed}
    except ValueError:
        body = None
    ok = response.status_code == 200
    status = str(body.get("status", "")) if body else ""
    if ok and status and status.lower() not in {"ok", "healthy", "up", "pass"}:
        ok = False
    failing = [
        f"{name.replace('_', ' ')} {check.get('detail', 'failing')}"
        for name, check in (body or {}).items()
        if isinstance(check, dict) and check.get("ok") is False
    ]
    detail = f"HTTP {response.status_code}" + (f", status {status}" if status else "")
    if failing:
        detail += f" ({'; '.join(failing)})"
    return Health(url, ok, response.status_code, detail, body)
