"""What every notebook runbook shares: the engine of a notebook and the step guard.

A runbook step either changes nothing (preflight, plan, verify) or changes data only after
``decide`` (``preflight.checks``) says so: not a dry run, and ``confirm`` equal to the phrase
the plan states.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput, JameyError
from jamey_engine.preflight.checks import Checks

Say = Callable[[str], None]
T = TypeVar("T")


def engine_for(data_dir: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Engine:
    """An Engine on ``data_dir``, or on the settings from the environment when it is None or empty.

    A notebook's kernel runs in ``notebooks/``, where the default ``./data`` would name a
    directory nobody uses; so when JAMEY_DATA_DIR is unset and the working directory is the
    repository's ``notebooks/``, the repository's ``data/`` (the one ``make run`` uses) is
    taken instead. Raises ConfigError when an environment variable is invalid.
    """
    env = os.environ if environ is None else environ
    if data_dir is None or str(data_dir).strip() == "":
        here = Path.cwd()
        in_notebooks = here.name == "notebooks" and (here.parent / "pyproject.toml").is_file()
        if "JAMEY_DATA_DIR" not in env and in_notebooks:
            return Engine(Settings.from_env(env, data_dir=str(here.parent / "data")))
        return Engine(Settings.from_env(env))
    return Engine(Settings.from_env(env, data_dir=str(data_dir)))


class NotebookRunbook:
    """Base of the notebook-facing runbooks: each step prints plainly and never raises a JameyError.

    The first JameyError a step meets is printed as ``error: <message>``, and every later step
    says it was skipped. Other exceptions (bugs) are not hidden.
    """

    def __init__(self, engine: Engine | None, *, say: Say = print) -> None:
        self.engine = engine
        self.say = say
        self.error: str | None = None
        self.stopped_at: str | None = None

    @property
    def stopped(self) -> bool:
        """True once a step failed; later steps do nothing."""
        return self.error is not None

    def _step(self, name: str, body: Callable[[], T]) -> T | None:
        if self.stopped:
            self.say(f"Skipped {name}: the runbook stopped at {self.stopped_at} ({self.error}).")
            return None
        try:
            return body()
        except JameyError as err:
            self.error = err.message
            self.stopped_at = name
            self.say(f"error: {err.message}")
            self.say(f"The runbook stopped at {name}; the steps after it are skipped.")
            return None

    @property
    def _engine(self) -> Engine:
        """The engine ``open`` made; steps run only after it, so it is there."""
        assert self.engine is not None
        return self.engine

    def _say_all(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.say(line)

    def close(self) -> None:
        """Release the engine's writers and connections."""
        if self.engine is not None:
            self.engine.close()


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool; raise InvalidInput naming the parameter otherwise."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} {value!r} must be True or False")
    return value


class ChangingRunbook(NotebookRunbook):
    """Base of the runbooks that change data: a dry run by default, applied only when ``confirm``
    holds the plan's phrase, then verified."""

    def __init__(
        self, engine: Engine | None, *, dry_run: bool = True, confirm: str = "", say: Say = print
    ) -> None:
        super().__init__(engine, say=say)
        self.dry_run = dry_run
        self.confirm = confirm
        self.verification: Checks | None = None

    def _open_engine(self, data_dir: str | Path | None, dry_run: object, confirm: object) -> str:
        """Check ``dry_run`` and ``confirm``, open the engine on ``data_dir``; return the mode
        for the runbook's opening line. Raises InvalidInput or ConfigError."""
        self.dry_run = check_bool(dry_run, "dry_run")
        self.confirm = "" if confirm is None else str(confirm)
        self.engine = engine_for(data_dir)
        return "DRY RUN (changes nothing)" if self.dry_run else "APPLY (when confirmed)"
