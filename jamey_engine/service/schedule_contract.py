"""The request body of ``POST /admin/runbooks/schedules``, stated exactly in the OpenAPI document
and enforced by the route (a body outside it is a 422 naming the field; nothing is recorded).

What the schema calls valid the engine accepts, because the schema is built from the service's
own runbook catalog: one variant per runbook a schedule may run (analyses; runbooks over a plan
action, whose scheduled changes go through the plan contract; other runbooks with a ``dry_run``
parameter, which must then be ``true``), its parameters with their JSON types (never ``plan_id``:
a plan is applied once); a
cron expression of five fields within their ranges (days of the month up to 28, so every
expression the schema allows runs some day; the CLI takes any expression croniter accepts);
and a time zone of the IANA database on this machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from fastapi.exceptions import RequestValidationError

from jamey_engine.runbooks.catalog import Parameter, Runbook

_STEP = r"(?:/[1-9][0-9]?)"


def _field(number: str) -> str:
    item = rf"(?:\*{_STEP}?|{number}(?:-{number})?{_STEP}?)"
    return rf"{item}(?:,{item}){{0,4}}"


# minute hour day-of-month month day-of-week, single spaces, numbers only.
CRON_PATTERN = (
    rf"^{_field('(?:[0-5]?[0-9])')} {_field('(?:[01]?[0-9]|2[0-3])')} "
    rf"{_field('(?:0?[1-9]|1[0-9]|2[0-8])')} {_field('(?:0?[1-9]|1[0-2])')} {_field('(?:[0-6])')}$"
)
TEXT_LIMIT = 1000  # the catalog's limit on a text parameter


@cache
def time_zones() -> tuple[str, ...]:
    """The IANA time zones this machine knows, sorted."""
    from zoneinfo import available_timezones

    return tuple(sorted(available_timezones() | {"UTC"}))


def _value_schema(parameter: Parameter) -> dict[str, Any]:
    kind = {"bool": "boolean", "int": "integer", "float": "number"}.get(parameter.type)
    schema: dict[str, Any] = {"type": kind} if kind else {"type": "string", "maxLength": TEXT_LIMIT}
    if parameter.help:
        schema["description"] = parameter.help
    return {"anyOf": [schema, {"type": "null"}]} if parameter.optional else schema


def _variant(runbook: Runbook) -> dict[str, Any] | None:
    dry = runbook.parameter("dry_run")
    if runbook.kind == "runbook" and dry is None:
        return None  # every run of it may change data: not schedulable until plans exist
    properties: dict[str, Any] = {}
    required: list[str] = []
    planned = runbook.plan_action is not None
    for parameter in runbook.parameters:
        if parameter.name == "plan_id" and planned:
            continue  # a plan is applied once; a scheduled run plans anew each time
        if parameter.name == "dry_run" and planned:
            properties["dry_run"] = {
                "type": "boolean",
                "description": "false: each run plans and applies its plan when no approval is required.",
            }
        elif parameter.name == "dry_run":
            properties["dry_run"] = {"const": True, "description": "Scheduled runs are dry runs."}
            if parameter.default is not True:
                required.append("dry_run")
        else:
            properties[parameter.name] = _value_schema(parameter)
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        parameters["required"] = required
    return {
        "type": "object",
        "title": runbook.name,
        "properties": {
            "runbook": {"const": runbook.name},
            "cron": {
                "type": "string",
                "pattern": CRON_PATTERN,
                "description": "Five fields: minute hour day month weekday, such as 0 6 * * 1-5.",
            },
            "timezone": {"enum": list(time_zones()), "default": "UTC"},
            "parameters": parameters,
        },
        "required": ["runbook", "cron", *(["parameters"] if required else [])],
        "additionalProperties": False,
    }


def schedule_body_schema(catalog: Mapping[str, Runbook]) -> dict[str, Any]:
    """The JSON Schema of a new schedule for ``catalog`` (one variant per schedulable runbook)."""
    variants = [variant for variant in map(_variant, catalog.values()) if variant is not None]
    return {"oneOf": variants} if variants else {"not": {}}


def check_schedule_body(body: Any, catalog: Mapping[str, Runbook]) -> dict[str, Any]:
    """``body`` when :func:`schedule_body_schema` allows it. Raises RequestValidationError (422)
    naming the field and what it must be."""
    from jsonschema import Draft202012Validator

    if not isinstance(body, dict):
        _refuse((), "must be a JSON object with runbook, cron, timezone and parameters")
    name = body.get("runbook")
    chosen = catalog.get(name) if isinstance(name, str) else None
    variant = _variant(chosen) if chosen is not None else None
    if variant is None:
        names = ", ".join(n for n, r in catalog.items() if _variant(r) is not None) or "none"
        _refuse(("runbook",), f"must name a runbook a schedule may run: {names}")
    errors = sorted(Draft202012Validator(variant).iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        message = error.message if len(error.message) <= 200 else error.message[:199] + "…"
        if list(error.absolute_path) == ["cron"] and error.validator == "pattern":
            message = (
                f"{error.instance!r} is not a cron expression of five fields, minute hour day month "
                "weekday (numbers, *, ranges, lists, /steps; days of the month up to 28)"
            )
        if list(error.absolute_path) == ["timezone"]:
            message = f"{error.instance!r} is not an IANA time zone (such as UTC or Europe/Paris)"
        _refuse(tuple(str(part) for part in error.absolute_path), message)
    return body


def _refuse(where: tuple[str, ...], message: str) -> None:
    raise RequestValidationError(
        [{"type": "value_error", "loc": ("body", *where), "msg": message, "input": None}]
    )
