"""Alertmanager's matchers: ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``.

:func:`parse_matchers` reads them as the CLI and the Alerts page take them;
:func:`matching_alerts` applies them exactly as Alertmanager does (regexes anchored).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jamey_engine.errors import InvalidInput

if TYPE_CHECKING:
    from jamey_engine.observability.alertmanager import Alert

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


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
        hit = re.fullmatch(self.value, value) is not None if self.is_regex else value == self.value
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
    is_regex = operator in ("=~", "!~")
    if is_regex:
        try:
            re.compile(value)
        except re.error as err:
            raise InvalidInput(f"matcher {text!r}: the regex does not compile ({err})") from None
    return Matcher(name, value, is_regex=is_regex, is_equal=operator in ("=", "=~"))


def parse_matchers(texts: Iterable[str]) -> list[Matcher]:
    """Parse several matchers; raises InvalidInput when there is none or one is bad."""
    matchers = [parse_matcher(text) for text in texts if str(text).strip()]
    if not matchers:
        raise InvalidInput("give at least one matcher, e.g. alertname=JameyHighErrorRate")
    if all(not m.is_equal or (m.is_regex and re.fullmatch(m.value, "")) for m in matchers):
        raise InvalidInput(
            "at least one matcher must name a label value (NAME=VALUE); these match everything"
        )
    return matchers


def matchers_from_labels(labels: Mapping[str, str]) -> list[Matcher]:
    """Equality matchers for every label of an alert (what the silence form starts from)."""
    return [Matcher(str(name), str(value)) for name, value in sorted(labels.items())]


def matching_alerts(alerts: Sequence[Alert], matchers: Sequence[Matcher]) -> list[Alert]:
    """The alerts whose labels satisfy every matcher: what a silence with them would catch."""
    return [alert for alert in alerts if all(m.matches(alert.labels) for m in matchers)]
