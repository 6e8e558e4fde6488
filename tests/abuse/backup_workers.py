"""Process targets for the concurrent-backup tests (importable by spawned processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def first_backup(data_dir: str, barrier: Any, results: Any) -> None:
    """Build an Engine on ``data_dir``, wait for the others at ``barrier``, take one backup and
    put ("ok", id) or ("failed", "Type: message") on ``results``."""
    from helpers import make_settings

    from jamey_engine.engine import Engine

    engine = Engine(make_settings(Path(data_dir)))
    try:
        barrier.wait(timeout=300)
        try:
            results.put(("ok", engine.vault.create().id))
        except Exception as err:  # the test reports every failure, with its type
            results.put(("failed", f"{type(err).__name__}: {err}"))
    finally:
        engine.close()
