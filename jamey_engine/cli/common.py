"""Small helpers shared by the command modules: JSON output, progress bars, the engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from jamey_engine.engine import Engine
from jamey_engine.progress import Progress


def get_engine() -> Engine:
    """The Engine the top-level group built for this invocation."""
    engine = click.get_current_context().find_object(Engine)
    assert engine is not None, "the jamey group builds the engine"
    return engine


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def emit_json(payload: Any) -> None:
    """Print ``payload`` as indented JSON (datetimes as ISO 8601, dataclasses as objects)."""
    click.echo(json.dumps(payload, default=_default, indent=2, sort_keys=False))


@contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    """A Progress callback drawing a bar on stderr (hidden when stderr is not a terminal)."""
    bar = tqdm(total=0, desc=description, unit="", disable=None, leave=False)
    try:

        def update(done: int, total: int, stage: str) -> None:
            if bar.disable:
                return
            if total != bar.total:
                bar.total = total
            bar.set_description_str(f"{description}: {stage}", refresh=False)
            bar.n = done
            bar.refresh()

        yield update
    finally:
        bar.close()
