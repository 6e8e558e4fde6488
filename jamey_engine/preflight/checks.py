"""What every data-changing step shares: checks (a preflight or a verification), the
confirmation phrase, and the one rule that decides whether an apply step may change data.

Below ``plans/`` and ``runbooks/``: the plan contract and the notebook runbooks both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd


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
