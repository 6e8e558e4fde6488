"""The Alertmanager webhook receiver (scope ``alerts:write``): ``POST /alertmanager/webhook``.

Alertmanager (prometheus/alertmanager.yml) delivers every notification here with a key from a
credentials file. The payload (webhook version 4) is checked first; a malformed one gets 400
naming the bad field, and nothing is stored. The body is read raw and checked by
``parse_webhook``; its OpenAPI request body is ``WEBHOOK_SCHEMA``, which states exactly what
``parse_webhook`` accepts. Each alert's notification is then stored once (repeats and retries are
no-ops), so Alertmanager may resend safely; the answer is 200 once the rows are committed and
each new firing alert instance's diagnosis run is started (``runbooks.auto_diagnosis``; off with
``JAMEY_AUTO_DIAGNOSE=0``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from jamey_engine.errors import InvalidInput
from jamey_engine.observability.alert_history import WEBHOOK_SCHEMA, parse_webhook, store_notifications
from jamey_engine.service.auth import KeyedRoute, engine_of, needs
from jamey_engine.service.errors import ERROR_RESPONSES

router = APIRouter(tags=["alerts"], responses=ERROR_RESPONSES, route_class=KeyedRoute)


class Received(BaseModel):
    alerts: int


PAYLOAD = {"required": True, "content": {"application/json": {"schema": WEBHOOK_SCHEMA}}}


@router.post(
    "/alertmanager/webhook",
    response_model=Received,
    openapi_extra={**needs("alerts:write"), "requestBody": PAYLOAD},
)
async def alertmanager_webhook(request: Request) -> Received:
    """Store the notifications of one Alertmanager webhook payload (version 4), idempotently."""
    raw = await request.body()
    try:
        payload: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("body: not valid JSON; expected Alertmanager's webhook payload") from None
    notifications = parse_webhook(payload)
    engine = engine_of(request)
    receiver = payload.get("receiver") if isinstance(payload.get("receiver"), str) else None
    await run_in_threadpool(
        store_notifications,
        engine.db,
        notifications,
        receiver=receiver,
        keep_days=engine.settings.alert_history_days,
    )
    if engine.settings.auto_diagnose:
        from jamey_engine.runbooks.auto_diagnosis import start_diagnoses

        await run_in_threadpool(start_diagnoses, engine, notifications)
    return Received(alerts=len(notifications))
