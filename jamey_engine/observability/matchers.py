"""Alertmanager's matchers: ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``.

:func:`parse_matchers` reads them as the CLI and the Alerts page take them;
:func:`matching_alerts` applies them exactly as Alertmanager does: regexes with RE2's semantics
(Alertmanager is written in Go, whose regexp is RE2), anchored as ``^(?:REGEX)$``. RE2 runs in
time linear in the text, so no pattern (``((.|.)*)*!``) can hold the workbench's interpreter.

:func:`check_silence_matchers` is the guard every silence passes (``post_silence`` calls it, so
the CLI, the Alerts page and any later door share it): at most MAX_MATCHERS matchers, each value
at most MAX_MATCHER_CHARS long and compiling under RE2, and never matchers that catch every
alert name: those whose ``alertname`` matchers (if any) catch the name of every rule in
prometheus/rules/alerts.yml (``.+``, ``Jamey.*``, ``!=x``) while their other matchers narrow
nothing (they take a made-up value: ``severity=~.+``). A silence scoped by another label's value
(``instance=host1``: a host under maintenance) is allowed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import re2
import yaml

from jamey_engine.errors import InvalidInput

if TYPE_CHECKING:
    from jamey_engine.observability.alertmanager import Alert

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
#: Longest matcher value (a label value or a regex) a silence may carry.
MAX_MATCHER_CHARS = 256
#: Most matchers one silence may carry.
MAX_MATCHERS = 20
#: The alert rules whose names a silence must not all catch.
RULES_FILE = Path(__file__).resolve().parents[2] / "prometheus" / "rules" / "alerts.yml"
#: A label value nobody uses: a matcher on another label that takes it narrows nothing.
MADE_UP_VALUE = "zz-made-up-value"
#: The name tried when the rules file has none (a made-up one: catching it means catching any).
MADE_UP_ALERTNAME = "SomeAlertNobodyWroteYet"
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class RegexError(ValueError):
    """A matcher's regex that RE2 does not accept (bad syntax, or a program too large)."""


@functools.lru_cache(maxsize=512)
def compile_regex(value: str) -> Any:
    """``value`` compiled with RE2, anchored as Alertmanager anchors it (``^(?:value)$``).

    Raises RegexError with RE2's reason when it does not compile.
    """
    try:
        return re2.compile(f"^(?:{value})$", _RE2_OPTIONS)
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager matcher: ``name`` ``=``/``!=``/``=~``/``!~`` ``value``."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @property
    def operator(self) -> str:
        return {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
            (self.is_regex, self.is_equal)
        ]

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{self.value}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label is the empty string)."""
        value = str(labels.get(self.name, ""))
        if self.is_regex:
            try:
                hit = compile_regex(self.value).search(value) is not None
            except RegexError:
                hit = False  # Alertmanager would not hold it; it catches nothing here
        else:
            hit = value == self.value
        return hit if self.is_equal else not hit

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


def parse_matcher(text: str) -> Matcher:
    """Parse ``NAME=VALUE`` (or ``!=``, ``=~``, ``!~``); quotes around the value are dropped.

    Raises InvalidInput naming the text when it is not a matcher or its regex does not compile.
    """
    found = _MATCHER.match(str(text))
    if not found:
        raise InvalidInput(f"matcher {text!r} is not NAME=VALUE (or NAME!=VALUE, NAME=~REGEX, NAME!~REGEX)")
    name, operator, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    matcher = Matcher(name, value, is_regex=operator in ("=~", "!~"), is_equal=operator in ("=", "=~"))
    _check_one(matcher)
    return matcher


def _check_one(matcher: Matcher) -> None:
    if len(matcher.value) > MAX_MATCHER_CHARS:
        raise InvalidInput(
            f"matcher {matcher.name}{matcher.operator}...: its value is {len(matcher.value)} characters;"
            f" at most {MAX_MATCHER_CHARS}"
        )
    if matcher.is_regex:
        try:
            compile_regex(matcher.value)
        except RegexError as err:
            raise InvalidInput(f"matcher {str(matcher)!r}: the regex does not compile ({err})") from None


def parse_matchers(texts: Iterable[str]) -> list[Matcher]:
    """Parse several matchers; raises InvalidInput when there is none or one is bad."""
    matchers = [parse_matcher(text) for text in texts if str(text).strip()]
    check_silence_matchers(matchers)
    return matchers


@functools.lru_cache(maxsize=1)
def known_alertnames() -> tuple[str, ...]:
    """Every alert name in prometheus/rules/alerts.yml (MADE_UP_ALERTNAME when none is found)."""
    names: set[str] = set()
    try:
        rules = yaml.safe_load(RULES_FILE.read_text()) or {}
    except (OSError, yaml.YAMLError):
        rules = {}
    for group in rules.get("groups") or ():
        for rule in group.get("rules") or ():
            if isinstance(rule, dict) and isinstance(rule.get("alert"), str):
                names.add(rule["alert"])
    return tuple(sorted(names)) or (MADE_UP_ALERTNAME,)


def check_silence_matchers(matchers: Sequence[Matcher]) -> None:
    """Refuse matchers no silence may carry (see the module); returns when they are fine.

    Raises InvalidInput naming the matcher: none or more than MAX_MATCHERS, a value longer than
    MAX_MATCHER_CHARS, a regex RE2 refuses, matchers that match everything, or matchers that
    catch every alert name.
    """
    if not matchers:
        raise InvalidInput("give at least one matcher, e.g. alertname=JameyHighErrorRate")
    if len(matchers) > MAX_MATCHERS:
        raise InvalidInput(f"matchers: {len(matchers)} given; a silence takes at most {MAX_MATCHERS}")
    for matcher in matchers:
        _check_one(matcher)
    if all(not m.is_equal or (m.is_regex and m.matches({})) for m in matchers):
        raise InvalidInput(
            "at least one matcher must name a label value (NAME=VALUE); these match everything"
        )
    on_name = [m for m in matchers if m.name == "alertname"]
    broad = all(m.matches({m.name: MADE_UP_VALUE}) for m in matchers if m.name != "alertname")
    if broad and all(all(m.matches({"alertname": name}) for m in on_name) for name in known_alertnames()):
        text = ", ".join(str(m) for m in matchers)
        raise InvalidInput(
            f"matchers {text!r} catch every alert name (all of prometheus/rules/alerts.yml's);"
            " name the alert: alertname=NAME, or a regex that catches only some"
        )


def matchers_from_labels(labels: Mapping[str, str]) -> list[Matcher]:
    """Equality matchers for every label of an alert (what the silence form starts from)."""
    return [Matcher(str(name), str(value)) for name, value in sorted(labels.items())]


def matching_alerts(alerts: Sequence[Alert], matchers: Sequence[Matcher]) -> list[Alert]:
    """The alerts whose labels satisfy every matcher: what a silence with them would catch."""
    return [alert for alert in alerts if all(m.matches(alert.labels) for m in matchers)]
