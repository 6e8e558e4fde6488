"""``jamey flusher``: the data dir's one write-ahead-log flusher (memory/flusher.py).

``jamey serve`` starts it (as ``python -m jamey_engine.memory.flusher``, the same code without
the CLI's imports) and restarts it when it dies, so serving processes never index; run it
yourself only when you serve some other way with JAMEY_FLUSHER=process.
"""

from __future__ import annotations

import click

from jamey_engine.cli.common import get_engine
from jamey_engine.memory import flusher


@click.command("flusher")
@click.option(
    "--parent", type=int, default=None, hidden=True, help="Stop when this process (jamey serve) is gone."
)
def group(parent: int | None) -> None:
    """Flush the memory layers' write-ahead logs into the index until interrupted (one per data dir)."""
    flusher.run(get_engine().settings, parent)
