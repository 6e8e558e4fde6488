"""The progress-callback convention shared by long operations.

A long operation (import, prune, backup, restore) accepts ``progress: Progress | None``
and calls it as ``progress(done, total, stage)``: ``done`` and ``total`` count units of
work (documents, bytes, files) and ``stage`` says what is happening in a few words.
The CLI draws a bar from it, the workbench an ``st.progress``.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, stage: str) -> None:
    """The callback used when the caller passes none."""
