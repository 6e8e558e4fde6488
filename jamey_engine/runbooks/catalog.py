"""The runbook catalog: every notebook with a ``parameters`` cell, and the rule for its parameters.

A notebook under the notebooks dir (``JAMEY_NOTEBOOKS_DIR``) is a runbook when papermill finds a
cell tagged ``parameters`` in it. Its name is the file stem, its title and description come from
its first markdown cell, and its parameters (name, type, default, help) from papermill's
``inspect_notebook``. A runbook with a ``dry_run`` or ``confirm`` parameter changes data
(kind ``runbook``); any other only reads (kind ``analysis``).
"""

from __future__ import annotations

import ast
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jamey_engine.errors import InvalidInput, NotFound

Kind = Literal["runbook", "analysis"]

# Set by the runner itself, never by a caller: a run acts on the data dir of the process that
# started it, and reads the Prometheus of its configuration (PROMETHEUS_URL), not a URL named in
# a request (which would let a caller make the service fetch any address and show the answer).
# ``run_actor`` and ``run_scope`` name the key that started the run and the scope it was checked
# for: the actor a notebook plans and applies as (``runbooks/planned.py``); ``run_schedule`` the
# schedule that started it (a scheduled change applies its own plan: the schedule, added by a
# key with the runbook's scope, is its confirmation). Only the engine sets them.
RUNNER_PARAMETERS = frozenset({"data_dir", "prometheus_url", "run_actor", "run_scope", "run_schedule"})

# The plan action each data-changing runbook plans and applies (``jamey_engine/plans``).
PLAN_ACTIONS: dict[str, str] = {
    "prune_memories": "prune",
    "dedupe_memories": "dedupe",
    "restore_backup": "restore",
    "take_backup": "backup",
    "flush_memory_log": "memory-flush",
    "apply_retention": "retention",
    "rotate_key": "key-rotate",
}

# Runbooks whose action needs more than ops:write (a restore replaces every key and memory, a
# rotation replaces a key): only ``admin`` may run them, a dry run included, since a dry run
# stores the plan and planning needs the action's scope. A test holds this equal to the actions.
ADMIN_RUNBOOKS = frozenset({"restore_backup", "rotate_key"})

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Parameter:
    """One parameter of a runbook: its name, type (``bool``, ``int``, ``float``, ``str``), default
    (a Python value, None allowed), help (the comment beside it in the notebook), and whether
    None is accepted (its default is None)."""

    name: str
    type: str
    default: Any
    help: str
    optional: bool = False

    def to_dict(self) -> dict[str, Any]:
        """``name``, ``type``, ``default``, ``help``: what every front door shows."""
        return {"name": self.name, "type": self.type, "default": self.default, "help": self.help}


@dataclass(frozen=True)
class Runbook:
    """A runnable notebook: name, title, description, kind, file and parameters (in notebook order)."""

    name: str
    title: str
    description: str
    kind: Kind
    path: Path
    parameters: tuple[Parameter, ...] = field(default=())
    declared: tuple[str, ...] = ()  # every parameter the notebook declares, the runner's included

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``, or None."""
        return next((p for p in self.parameters if p.name == name), None)

    def changes_data(self, values: Mapping[str, Any]) -> bool:
        """True when a run with ``values`` (validated) may change data: a runbook that is not a
        dry run. Analyses never change data."""
        if self.kind != "runbook":
            return False
        dry = self.parameter("dry_run")
        if dry is None:
            return True
        return values.get("dry_run", dry.default) is not True

    def scope_for(self, values: Mapping[str, Any]) -> str:
        """The scope a key needs to start a run with ``values``: ``admin`` for a runbook whose
        plan action needs it (a restore, a key rotation; its dry run plans it too), ``ops:write``
        for every other run."""
        return "admin" if self.name in ADMIN_RUNBOOKS else "ops:write"

    @property
    def plan_action(self) -> str | None:
        """The plan action this runbook changes data through (None for an analysis)."""
        return PLAN_ACTIONS.get(self.name)

    def to_dict(self) -> dict[str, Any]:
        """The runbook as JSON-friendly data (the CLI's and the API's shape): ``scope`` is the
        scope a key needs to run it (its dry run included), ``plan_action`` the plan action it
        applies (None for a read-only one)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "title": self.title,
            "description": self.description,
            "notebook": self.path.name,
            "scope": self.scope_for({}),
            "plan_action": self.plan_action,
            "parameters": [p.to_dict() for p in self.parameters],
        }


def _title_and_description(cells: list[Any]) -> tuple[str, str]:
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell.get("source") or "")
        lines = source.strip().splitlines()
        title = ""
        if lines and lines[0].startswith("#"):
            title = lines.pop(0).lstrip("#").strip()
        paragraphs = [" ".join(p.split()) for p in "\n".join(lines).split("\n\n") if p.strip()]
        return title, paragraphs[0] if paragraphs else ""
    return "", ""


def _parameter(info: Mapping[str, Any]) -> Parameter:
    name = str(info["name"])
    try:
        default = ast.literal_eval(str(info.get("default")))
    except (ValueError, SyntaxError):
        default = str(info.get("default"))
    inferred = str(info.get("inferred_type_name") or "")
    kind = {bool: "bool", int: "int", float: "float"}.get(type(default), "str")
    if default is None and inferred in ("bool", "int", "float"):
        kind = inferred
    return Parameter(name, kind, default, str(info.get("help") or "").strip(), optional=default is None)


def load_runbook(path: Path) -> Runbook | None:
    """The runbook in the notebook at ``path``, or None when it has no ``parameters`` cell.

    Raises InvalidInput naming the file when it is not a readable notebook.
    """
    import nbformat
    import papermill

    # inspect_notebook logs "Input Notebook: <path>" at INFO for every notebook: listing the
    # runbooks is not running them, so that line is kept out of `jamey runbook list`'s output.
    papermill_log = logging.getLogger("papermill")
    level = papermill_log.level
    papermill_log.setLevel(max(level, logging.WARNING))
    try:
        notebook = nbformat.read(path, as_version=4)
        found = papermill.inspect_notebook(str(path))
    except Exception as err:
        raise InvalidInput(f"notebook {path.name!r} cannot be read: {err}") from None
    finally:
        papermill_log.setLevel(level)
    has_parameters = any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in notebook.cells)
    if not has_parameters:
        return None
    parameters = tuple(_parameter(info) for info in found.values() if info["name"] not in RUNNER_PARAMETERS)
    title, description = _title_and_description(notebook.cells)
    names = {p.name for p in parameters}
    kind: Kind = "runbook" if names & {"dry_run", "confirm"} else "analysis"
    declared = tuple(str(info["name"]) for info in found.values())
    return Runbook(path.stem, title or path.stem, description, kind, path, parameters, declared)


_cache: dict[Path, tuple[float, Runbook | None]] = {}
_cache_lock = threading.Lock()


def load_catalog(notebooks_dir: Path) -> dict[str, Runbook]:
    """Every runbook in ``notebooks_dir`` by name, sorted; a notebook is read again only when it
    changed. A notebook that cannot be read is left out (it is no runbook until it can be)."""
    catalog: dict[str, Runbook] = {}
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        if not _NAME.match(path.stem):
            continue
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        with _cache_lock:
            cached = _cache.get(path)
        if cached is not None and cached[0] == mtime:
            runbook = cached[1]
        else:
            try:
                runbook = load_runbook(path)
            except InvalidInput:
                continue
            with _cache_lock:
                _cache[path] = (mtime, runbook)
        if runbook is not None:
            catalog[runbook.name] = runbook
    return catalog


def find_runbook(notebooks_dir: Path, name: str) -> Runbook:
    """The runbook called ``name``. Raises NotFound naming it and the runbooks there are."""
    catalog = load_catalog(notebooks_dir)
    found = catalog.get(str(name))
    if found is None:
        known = ", ".join(catalog) or "none"
        raise NotFound(f"runbook {name!r} does not exist; the runbooks are: {known}")
    return found


def _coerce(parameter: Parameter, value: Any) -> Any:
    name, kind = parameter.name, parameter.type
    if value is None:
        if parameter.optional:
            return None
        raise InvalidInput(f"parameter {name} must be a {kind}, not empty")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise InvalidInput(f"parameter {name} {value!r} must be true or false")
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise InvalidInput(f"parameter {name} {value!r} must be a number ({kind})")
        if kind == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) or (kind == "float" and isinstance(value, float)):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip()) if kind == "int" else float(value.strip())
            except ValueError:
                pass
        raise InvalidInput(f"parameter {name} {value!r} must be a number ({kind})")
    if not isinstance(value, str):
        raise InvalidInput(f"parameter {name} {value!r} must be text")
    if parameter.optional and not value.strip():
        return None
    if len(value) > 1000:
        raise InvalidInput(f"parameter {name} is longer than 1000 characters")
    return value


def validate_parameters(runbook: Runbook, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` checked against ``runbook``'s parameters and converted to their types (text from
    a command line or a URL becomes a bool or a number). Only the parameters given are returned;
    the notebook's defaults fill the rest.

    Raises InvalidInput, in one line naming the parameter and the value, for an unknown name or a
    value of the wrong type.
    """
    values: dict[str, Any] = {}
    for name, value in given.items():
        parameter = runbook.parameter(str(name))
        if str(name) in RUNNER_PARAMETERS:
            raise InvalidInput(
                f"parameter {name} is not set by a run: a run uses the service's own configuration"
                " (JAMEY_DATA_DIR, PROMETHEUS_URL)"
            )
        if parameter is None:
            known = ", ".join(p.name for p in runbook.parameters) or "none"
            raise InvalidInput(
                f"runbook {runbook.name} has no parameter {name!r}; its parameters are: {known}"
            )
        values[parameter.name] = _coerce(parameter, value)
    return values
