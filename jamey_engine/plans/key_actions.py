"""Actions on API keys: key-revoke (one or many) and key-rotate, through the key manager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jamey_engine.durations import format_duration, parse_duration
from jamey_engine.errors import Conflict, InvalidInput
from jamey_engine.plans.actions import Action, Change, Parameter, Preview, parse_text, register
from jamey_engine.preflight.checks import Check, Checks

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.keys import KeyInfo
    from jamey_engine.progress import Progress


def _key_ids(value: Any) -> list[str]:
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    ids = list(dict.fromkeys(str(part).strip() for part in parts if str(part).strip()))
    if not ids:
        raise InvalidInput(f"parameter 'key_ids' {value!r} names no key; give key ids, comma separated")
    return ids


def _grace(value: Any) -> str:
    return format_duration(parse_duration(str(value), field="grace"))


def _key_row(info: KeyInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "status": info.status, "scopes": list(info.scopes)}


def _names(infos: list[KeyInfo]) -> str:
    return ", ".join(info.name for info in infos)


class KeyRevokeAction(Action):
    name = "key-revoke"
    scope = "admin"
    description = "Stop one or many API keys now."
    parameters = (Parameter("key_ids", "the key ids to revoke, comma separated", _key_ids, required=True),)

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        infos = [engine.keys.show(key_id) for key_id in params["key_ids"]]
        for info in infos:
            if info.status == "revoked":
                raise Conflict(f"API key {info.id} ({info.name}) is already revoked")
        phrase = f"revoke {len(infos)} key{'s' if len(infos) > 1 else ''}: {_names(infos)}"
        state = [[info.id, info.status] for info in infos]
        return Preview({"keys": [_key_row(info) for info in infos]}, state, phrase, infos)

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        done = [engine.keys.revoke(info.id, actor=actor) for info in preview.native]
        return Change({"revoked": [_key_row(info) for info in done]})

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        checks = []
        for info in preview.native:
            status = engine.keys.show(info.id).status
            checks.append(Check(f"key {info.name} ({info.id})", status == "revoked", f"status {status}"))
        return Checks("Verification", tuple(checks))


class KeyRotateAction(Action):
    name = "key-rotate"
    scope = "admin"
    description = "Replace an API key with a new one of the same name, scopes and limit."
    parameters = (
        Parameter("key_id", "the key to rotate", parse_text("key_id"), required=True),
        Parameter("grace", "keep the old key working this long (default: it stops at once)", _grace),
    )

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        info = engine.keys.show(params["key_id"])
        if info.status not in ("active", "expiring"):
            raise Conflict(f"API key {info.id} is {info.status}; only an active key can be rotated")
        summary = {"key": _key_row(info), "grace": params["grace"]}
        return Preview(summary, [info.id, info.status], f"rotate key {info.name}", info)

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        grace = parse_duration(params["grace"], field="grace") if params["grace"] else None
        created = engine.keys.rotate(preview.native.id, grace, actor=actor)
        result = {"old_id": preview.native.id, "new_id": created.id, "name": created.info.name}
        return Change(result, created, secret=created.key)

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        old = engine.keys.show(preview.native.id).status
        new = engine.keys.show(change.native.id).status
        return Checks(
            "Verification",
            (
                Check("old key stopped or in grace", old in ("revoked", "rotating"), f"status {old}"),
                Check("new key works", new in ("active", "expiring"), f"status {new}"),
            ),
        )


for _action in (KeyRevokeAction(), KeyRotateAction()):
    register(_action)
