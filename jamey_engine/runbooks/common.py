"""What every runbook shares: checks, the confirmation phrase, and the notebook step guard.

A runbook step either changes nothing (preflight, plan, verify) or changes data only after
``decide`` says so: not a dry run, and ``confirm`` equal to the phrase the plan states.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import pandas as pd

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput, JameyError

Say = Callable[[str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One thing a runbook looked at: its name, whether it passed, and what it saw."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Checks:
    """A list of checks (a preflight or a verification) with a title."""

    title: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when every check passed (and there was at least one)."""
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        """The checks that did not pass."""
        return [check for check in self.checks if not check.ok]

    def to_frame(self) -> pd.DataFrame:
        """One row per check: check, result (``ok`` or ``FAILED``), detail."""
        return pd.DataFrame(
            [
                {"check": c.name, "result": "ok" if c.ok else "FAILED", "detail": c.detail}
                for c in self.checks
            ],
            columns=["check", "result", "detail"],
        )

    def lines(self) -> list[str]:
        """A line per check, for plain-text output."""
        return [f"[{'ok' if c.ok else 'FAILED'}] {c.name}: {c.detail}" for c in self.checks]


def normalize_phrase(text: object) -> str:
    """A confirmation phrase with surrounding and repeated whitespace removed (case is kept)."""
    return " ".join(str(text).split())


def confirmation_matches(expected: str, given: object) -> bool:
    """True when ``given`` is the ``expected`` phrase, ignoring extra whitespace only."""
    return bool(normalize_phrase(expected)) and normalize_phrase(expected) == normalize_phrase(given)


Verdict = Literal["dry_run", "noop", "refused", "go"]


@dataclass(frozen=True)
class Decision:
    """Whether an apply step may change data, and the plain message that says why or why not."""

    verdict: Verdict
    message: str

    @property
    def go(self) -> bool:
        """True only when the change may be made."""
        return self.verdict == "go"


def decide(
    *,
    action: str,
    phrase: str,
    dry_run: bool,
    confirm: object,
    nothing_to_do: str | None = None,
    blocked: str | None = None,
) -> Decision:
    """The one rule for every apply step, in this order.

    1. ``blocked`` (a reason the change must not happen, e.g. a damaged backup): refused.
    2. ``nothing_to_do`` (a reason there is nothing to change): a no-op, whatever ``confirm`` says.
    3. ``dry_run``: nothing changes; the message says how to apply.
    4. ``confirm`` differs from ``phrase``: refused, naming the phrase needed.
    5. Otherwise: go.
    """
    if blocked:
        return Decision("refused", f"Refused: {blocked} Nothing was changed.")
    if nothing_to_do:
        return Decision("noop", f"Nothing to do: {nothing_to_do} Nothing was changed.")
    if dry_run:
        return Decision(
            "dry_run",
            f"Dry run: nothing was changed. To {action}, run again with dry_run=False "
            f"and confirm={phrase!r}.",
        )
    if not confirmation_matches(phrase, confirm):
        given = normalize_phrase(confirm)
        shown = repr(given) if given else "empty"
        return Decision(
            "refused",
            f"Refused: confirm is {shown}, but this plan needs exactly {phrase!r}. Nothing was changed.",
        )
    return Decision("go", f"Confirmed: {phrase!r}.")


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
