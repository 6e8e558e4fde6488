"""The app factory each worker of ``jamey serve --workers N`` runs (uvicorn ``factory=True``).

``jamey serve`` puts the effective settings (its flags included) into the environment before
uvicorn spawns the workers, so every worker parses the same settings: the same data dir,
database, limits and port. Each worker builds its own Engine, runs the scheduled jobs behind
their leases (so exactly one worker takes them) and closes the engine when it stops.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from jamey_engine.config import Settings
from jamey_engine.observability.logsink import setup_logging

log = logging.getLogger(__name__)


def app_from_env() -> FastAPI:
    """A full service app on ``Settings.from_env()``, owning its engine and its schedules."""
    from prometheus_client import values

    from jamey_engine.engine import Engine
    from jamey_engine.service import create_app

    # granian forks its workers from a process that imported prometheus_client before
    # PROMETHEUS_MULTIPROC_DIR was set: choose the value class again, so this worker's metrics
    # go to the shared files (uvicorn's spawned workers import it afresh and need nothing).
    values.ValueClass = values.get_value_class()
    settings = Settings.from_env()
    setup_logging(settings.log_level)
    return create_app(Engine(settings), schedules=True, owns_engine=True)
