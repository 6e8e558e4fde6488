"""The state file a running ``jamey stack`` keeps under ``$JAMEY_DATA_DIR/stack/``, and its reader.

The stack rewrites the file (a temporary name, then a rename, so a reader never sees half of
it) whenever a component starts, exits, restarts or gives up, and when the stack stops.
``read_status`` turns it into what ``jamey stack status`` shows, from any terminal: a file that
says "running" while its stack process is gone reads as stopped, since that stack was killed
without a chance to say so.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jamey_engine.errors import NotFound, StorageCorrupt
from jamey_engine.fsutil import process_alive, process_identity
from jamey_engine.stack.supervisor import Component

STATE_FILE = "state.json"


@dataclass(frozen=True)
class ComponentStatus:
    """One line of ``jamey stack status``."""

    name: str
    state: str
    pid: int | None
    restarts: int
    uptime_seconds: float | None
    url: str
    log: str


@dataclass(frozen=True)
class StackStatus:
    """The whole stack as its state file describes it, ``now``."""

    pid: int
    state: str  # running, or stopped (cleanly, or ``note`` says otherwise)
    started_at: float
    updated_at: float
    note: str
    components: list[ComponentStatus]

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``jamey stack status --json``."""
        return {
            "pid": self.pid,
            "state": self.state,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "note": self.note,
            "components": [vars(c) for c in self.components],
        }


def state_path(run_dir: Path) -> Path:
    """Where the state file of the stack running in ``run_dir`` lives."""
    return run_dir / STATE_FILE


def write_state(
    run_dir: Path, components: list[Component], *, state: str, started_at: float, pid: int | None = None
) -> None:
    """Atomically replace the state file with the current state of ``components``."""
    owner = os.getpid() if pid is None else pid
    payload = {
        "pid": owner,
        "pid_identity": process_identity(owner),  # a reused pid is not the stack
        "state": state,
        "started_at": started_at,
        "updated_at": time.time(),
        "components": [
            {
                "name": c.name,
                "state": c.state,
                "pid": c.pid,
                "restarts": c.restarts,
                "started_at": c.started_at,
                "url": c.url,
                "log": str(c.log_path),
            }
            for c in components
        ],
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=run_dir, prefix=".state-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2)
        os.replace(temporary, state_path(run_dir))
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_status(run_dir: Path, now: float | None = None) -> StackStatus:
    """The stack's status from its state file. Raises NotFound when no stack has run here,
    StorageCorrupt when the file cannot be read."""
    path = state_path(run_dir)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        pid = int(payload["pid"])
        raw_components = list(payload["components"])
    except FileNotFoundError:
        raise NotFound(
            f"no stack has run on this data dir ({path} does not exist); start one with `jamey stack`"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StorageCorrupt(f"stack state file {path} cannot be read: {err}", path=str(path)) from None
    now = time.time() if now is None else now
    state = str(payload.get("state", "stopped"))
    note = ""
    identity = payload.get("pid_identity")
    alive = state == "running" and process_alive(pid, str(identity) if identity else None)
    if state == "running" and not alive:
        state = "stopped"
        note = f"the stack (pid {pid}) is gone without stopping cleanly; its processes may still run"
    components = []
    for item in raw_components:
        component_state = str(item.get("state", "stopped"))
        started = item.get("started_at")
        if not alive:
            component_state = component_state if component_state == "failed" else "stopped"
        running = component_state == "running"
        components.append(
            ComponentStatus(
                name=str(item.get("name", "?")),
                state=component_state,
                pid=item.get("pid") if running else None,
                restarts=int(item.get("restarts", 0)),
                uptime_seconds=round(max(0.0, now - float(started)), 1) if running and started else None,
                url=str(item.get("url", "")),
                log=str(item.get("log", "")),
            )
        )
    return StackStatus(
        pid=pid,
        state=state,
        started_at=float(payload.get("started_at", 0.0)),
        updated_at=float(payload.get("updated_at", 0.0)),
        note=note,
        components=components,
    )
