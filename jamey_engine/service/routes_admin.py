"""Admin routes (scope ``admin``): create, list, show, rotate and revoke keys; read the audit trail.

The audit trail's actor is the calling key's name. A plaintext key appears once, in the answer
that creates it (create, rotate); every admin answer carries ``Cache-Control: no-store`` (set by
the middleware) so no proxy or browser keeps it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, Field

from jamey_engine.durations import parse_duration
from jamey_engine.keys import KeyManager
from jamey_engine.keys.audit import EventName
from jamey_engine.keys.manager import NAME_MAX, NAME_PATTERN
from jamey_engine.keys.scopes import DEFAULT_SCOPES, SCOPE_DESCRIPTIONS, SCOPES, Scope
from jamey_engine.keys.status import KeyStatus
from jamey_engine.plans.actors import Actor
from jamey_engine.plans.applying import plan_and_apply
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.contract import DURATION_PATTERN, RATE_LIMIT_PATTERN
from jamey_engine.service.errors import ERROR_RESPONSES, error_responses

KeyId = Annotated[str, Path(min_length=1, max_length=64, description="The key's public lookup id.")]

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={**ERROR_RESPONSES, **error_responses(409)},
    route_class=KeyedRoute,
)


class CreateKeyBody(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=NAME_MAX,
        pattern=NAME_PATTERN,
        description="A name people recognise (shown in logs and audit): not blank, no control characters.",
    )
    scopes: list[Scope] = Field(
        default=list(DEFAULT_SCOPES),
        min_length=1,
        max_length=len(SCOPES),
        description="What the key may do. "
        + "; ".join(f"{scope}: {SCOPE_DESCRIPTIONS[scope]}" for scope in SCOPES)
        + ".",
    )
    rate_limit: str | None = Field(
        default=None,
        pattern=RATE_LIMIT_PATTERN,
        description="An amount per second, minute, hour or day, such as 120/minute; default JAMEY_DEFAULT_RATE_LIMIT.",
    )
    expires_in: str | None = Field(
        default=None, pattern=DURATION_PATTERN, description="A duration such as 90d or 1h30m; default never."
    )


class RotateBody(BaseModel):
    grace: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        description="How long the old key keeps working (such as 24h); default: it stops now.",
    )


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    rate_limit: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    status: KeyStatus
    rotated_to: str | None = None


class CreatedKeyOut(KeyOut):
    key: str = Field(description="The plaintext key. Shown once: store it now.")


class KeyList(BaseModel):
    keys: list[KeyOut]


class AuditEntry(BaseModel):
    at: datetime
    event: EventName
    key_id: str | None = None
    key_name: str | None = None
    actor: str | None = None
    detail: str | None = None


class AuditList(BaseModel):
    events: list[AuditEntry]


def _keys(request: Request) -> KeyManager:
    return engine_of(request).keys


def _actor(request: Request) -> str:
    return str(current_key(request).name)


def _key_out(info: Any) -> KeyOut:
    data: dict[str, Any] = asdict(info)
    data["scopes"] = list(data.get("scopes") or ())
    return KeyOut.model_validate({name: data.get(name) for name in KeyOut.model_fields})


def _created_out(created: Any) -> CreatedKeyOut:
    return CreatedKeyOut(key=created.key, **_key_out(created.info).model_dump())


ADMIN = needs("admin")


@router.post("/keys", status_code=201, response_model=CreatedKeyOut, openapi_extra=ADMIN)
def create_key(body: CreateKeyBody, request: Request) -> CreatedKeyOut:
    """Create a key; the answer holds its plaintext, once."""
    expires_in = parse_duration(body.expires_in, field="expires_in") if body.expires_in else None
    created = _keys(request).create(
        body.name,
        scopes=tuple(dict.fromkeys(body.scopes)),
        rate_limit=body.rate_limit,
        expires_in=expires_in,
        actor=_actor(request),
    )
    return _created_out(created)


@router.get("/keys", response_model=KeyList, openapi_extra=ADMIN)
def list_keys(request: Request) -> KeyList:
    """Every key with its status (never a secret)."""
    return KeyList(keys=[_key_out(info) for info in _keys(request).list()])


@router.get("/keys/{key_id}", response_model=KeyOut, openapi_extra=ADMIN)
def show_key(request: Request, key_id: KeyId) -> KeyOut:
    """One key by its public id (404 when unknown)."""
    return _key_out(_keys(request).show(key_id))


@router.post("/keys/{key_id}/rotate", status_code=201, response_model=CreatedKeyOut, openapi_extra=ADMIN)
def rotate_key(
    request: Request, key_id: KeyId, body: Annotated[RotateBody | None, Body()] = None
) -> CreatedKeyOut:
    """Issue a successor key (through a plan); the old one keeps working for ``grace`` (default: stops now)."""
    grace_text = body.grace if body is not None else None
    if grace_text:
        parse_duration(grace_text, field="grace")
    done = plan_and_apply(
        engine_of(request),
        "key-rotate",
        {"key_id": key_id, "grace": grace_text},
        Actor.from_key(current_key(request)),
    )
    return _created_out(done.native)


@router.post("/keys/{key_id}/revoke", response_model=KeyOut, openapi_extra=ADMIN)
def revoke_key(request: Request, key_id: KeyId) -> KeyOut:
    """Revoke a key (through a plan: 409 naming it when JAMEY_APPROVALS asks for a second key);
    it stops working within JAMEY_KEY_CACHE_SECONDS."""
    plan_and_apply(
        engine_of(request), "key-revoke", {"key_ids": [key_id]}, Actor.from_key(current_key(request))
    )
    return _key_out(_keys(request).show(key_id))


@router.get("/audit", response_model=AuditList, openapi_extra=ADMIN)
def audit_trail(request: Request, limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> AuditList:
    """The newest key events first: who did what to which key."""
    return AuditList(events=[AuditEntry(**entry) for entry in _keys(request).audit(limit=limit)])
