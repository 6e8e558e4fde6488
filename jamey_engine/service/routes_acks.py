"""``POST /admin/alerts/{fingerprint}/ack`` (``ops:write``): acknowledge a firing alert without
silencing it. The actor is the calling key's name; the acknowledgement ends when the alert
resolves (a resolved notification through the webhook)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from jamey_engine.observability.alert_acks import COMMENT_LIMIT, FINGERPRINT_PATTERN, acknowledge
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.contract import NOT_BLANK_PATTERN
from jamey_engine.service.errors import ERROR_RESPONSES, error_responses

router = APIRouter(
    prefix="/admin/alerts",
    tags=["alerts"],
    responses={**ERROR_RESPONSES, **error_responses(409)},
    route_class=KeyedRoute,
)

Fingerprint = Annotated[
    str,
    Path(pattern=FINGERPRINT_PATTERN, description="The alert's fingerprint (Alertmanager's, hexadecimal)."),
]


class AckBody(BaseModel):
    comment: str = Field(
        min_length=1,
        max_length=COMMENT_LIMIT,
        pattern=NOT_BLANK_PATTERN,
        description="What you are doing about it.",
    )


class AckOut(BaseModel):
    fingerprint: str
    alertname: str
    starts_at: str
    actor: str
    comment: str
    at: str
    ended_at: str | None
    active: bool


@router.post("/{fingerprint}/ack", status_code=201, response_model=AckOut, openapi_extra=needs("ops:write"))
def ack_alert(request: Request, fingerprint: Fingerprint, body: AckBody) -> AckOut:
    """Acknowledge the alert's latest firing instance in the history. 404 when the history has
    no firing notification of it, 409 when that instance already resolved."""
    done = acknowledge(engine_of(request).db, fingerprint, body.comment, actor=str(current_key(request).name))
    return AckOut(**done.to_dict())
