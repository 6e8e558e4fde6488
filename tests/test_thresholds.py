"""The thresholds the code shares with the alert rules: prometheus/rules/alerts.yml cannot import
jamey_engine.thresholds, so this reads each rule and holds its number equal to the module's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from jamey_engine import thresholds

RULES = Path(__file__).resolve().parents[1] / "prometheus" / "rules" / "alerts.yml"
_BOUND = re.compile(r"[<>]=?\s*([0-9.]+(?:\s*\*\s*[0-9.]+)*)\s*$")


def rules() -> dict[tuple[str, str], dict]:
    found = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            found[(rule["alert"], rule["labels"]["severity"])] = rule
    return found


def bound(expr: str) -> float:
    """The number the expression's last comparison compares with (``> 26 * 3600`` is 93600)."""
    match = _BOUND.search(expr.strip())
    assert match, f"no trailing comparison with a number in {expr!r}"
    value = 1.0
    for factor in match.group(1).split("*"):
        value *= float(factor)
    return value


def seconds(duration: str) -> float:
    return float(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


@pytest.mark.parametrize(
    ("alert", "severity", "declared"),
    [
        ("JameyHighErrorRate", "warning", thresholds.ERROR_RATE_WARNING),
        ("JameyHighErrorRate", "critical", thresholds.ERROR_RATE_CRITICAL),
        ("JameyHighLatency", "warning", thresholds.P95_LATENCY_WARNING_SECONDS),
        ("JameyHighLatency", "critical", thresholds.P95_LATENCY_CRITICAL_SECONDS),
        ("JameyMemoryIndexTooLarge", "warning", thresholds.INDEX_SIZE_WARNING_BYTES),
        ("JameyMemoryIndexTooLarge", "critical", thresholds.INDEX_SIZE_CRITICAL_BYTES),
        ("JameyDataDirDiskNearlyFull", "warning", thresholds.DISK_FREE_WARNING_RATIO),
        ("JameyDataDirDiskNearlyFull", "critical", thresholds.DISK_FREE_CRITICAL_RATIO),
        ("JameyBackupTooOld", "critical", thresholds.BACKUP_MAX_AGE.total_seconds()),
        ("JameyApiKeyExpiringSoon", "warning", thresholds.KEY_EXPIRING_WITHIN.total_seconds()),
    ],
)
def test_each_rule_s_number_is_the_declared_threshold(alert: str, severity: str, declared: float) -> None:
    assert bound(rules()[(alert, severity)]["expr"]) == pytest.approx(declared), (alert, severity)


def test_a_backup_that_never_succeeded_alerts_after_the_same_age() -> None:
    rule = rules()[("JameyBackupNeverSucceeded", "critical")]
    assert seconds(rule["for"]) == thresholds.BACKUP_MAX_AGE.total_seconds()


def test_the_reader_of_rule_numbers_can_tell_a_change() -> None:
    """The check above can fail: a rule whose number moved reads as the new number."""
    assert bound('x{job="jamey"} > 26 * 3600') == 93600
    assert bound("a / b < 0.10") == pytest.approx(0.10)
    assert bound("a - time() < 8 * 86400") != thresholds.KEY_EXPIRING_WITHIN.total_seconds()
