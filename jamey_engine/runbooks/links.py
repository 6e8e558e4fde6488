"""Which runbooks answer an alert, and where their forms are: the one mapping every front door
uses (the diagnosis auto-run, the Alerts page's "Run runbook", the alert rules' ``runbook_url``,
``jamey runbook list``'s ``answers``, the generated pages under docs/alerts/)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from jamey_engine import ports

RUNBOOKS_PAGE = "runbooks"  # the workbench page's URL path
ALERTS_PAGE = "alerts"  # every rule's runbook_url opens the alert's evidence there
# The base the alert rules in prometheus/rules/ are written with (JAMEY_WORKBENCH_URL's default);
# render_alert_rules puts the configured base in its place.
DEFAULT_WORKBENCH_URL = ports.local_url(ports.WORKBENCH)
ALERT_DOCS_DIR = "alerts"  # docs/alerts/<alertname>.md, one generated page per alert


@dataclass(frozen=True)
class RunbookLink:
    """A runbook to run and the parameters to fill in its form."""

    runbook: str
    parameters: dict[str, str] = field(default_factory=dict)


REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: The notebook that diagnoses every alert (one parameterized analysis; the family picks the evidence).
DIAGNOSIS_RUNBOOK = "diagnose_alert"


@dataclass(frozen=True)
class AlertLinks:
    """What answers one alert: its diagnosis family and notebook, and the one remediation runbook
    intended for it (None: no action exists) with {runbook parameter: alert label it is filled from},
    and the guide that explains it."""

    family: str
    guide: str  # a key of alert_guides.GUIDES (the Alerts page and the alert's docs page show it)
    diagnosis: str = DIAGNOSIS_RUNBOOK
    remediation: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)


# The one table: alert name -> diagnosis family and remediation. A remediation is offered only
# while its notebook exists (take_backup, flush_memory_log, apply_retention and rotate_key come
# with the plan contract); a test fails when an alert in prometheus/rules/ is missing here.
ALERT_LINKS: dict[str, AlertLinks] = {
    "JameyServiceDown": AlertLinks(
        "service_down",
        "service-down",
    ),
    "JameyHighErrorRate": AlertLinks(
        "error_rate",
        "high-error-rate",
    ),
    "JameyHighLatency": AlertLinks(
        "latency",
        "high-latency",
    ),
    "JameyRateLimitSurge": AlertLinks(
        "rate_limit_surge",
        "rate-limit-surge",
    ),
    "JameyMemoryIndexTooLarge": AlertLinks(
        "index_too_large",
        "memory-index-size",
        remediation="prune_memories",
        parameters={"layer": "layer"},
    ),
    "JameyMemoryLogNotFlushing": AlertLinks(
        "log_not_flushing",
        "memory-write-ahead-log",
        remediation="flush_memory_log",
        parameters={"layer": "layer"},
    ),
    "JameyRetentionFailing": AlertLinks(
        "retention_failing", "memory-retention", remediation="apply_retention"
    ),
    "JameyBackupFailed": AlertLinks("backup_failed", "backups", remediation="take_backup"),
    "JameyBackupTooOld": AlertLinks("backup_too_old", "backups", remediation="take_backup"),
    "JameyBackupNeverSucceeded": AlertLinks("backup_never_succeeded", "backups", remediation="take_backup"),
    "JameyMqttDisconnected": AlertLinks(
        "mqtt_disconnected",
        "mqtt",
    ),
    "JameyMqttConnectionFailures": AlertLinks(
        "mqtt_connection_failures",
        "mqtt",
    ),
    "JameyHighMemoryUsage": AlertLinks(
        "memory",
        "process-resources",
    ),
    "JameyHighCpuUsage": AlertLinks(
        "cpu",
        "process-resources",
    ),
    "JameyDataDirDiskNearlyFull": AlertLinks(
        "disk_nearly_full",
        "data-dir-disk-full",
    ),
    "JameyApiKeyExpiringSoon": AlertLinks(
        "key_expiring", "api-key-expiring", remediation="rotate_key", parameters={"key_id": "key_id"}
    ),
    "JameyAlertReceiverFailing": AlertLinks(
        "alert_receiver_failing",
        "alert-receiver-failing",
    ),
    "JameyBackupNotOffsite": AlertLinks("backup_not_offsite", "offsite-and-drills"),
    "JameyRestoreDrillStale": AlertLinks("restore_drill_stale", "offsite-and-drills"),
    "JameyRunbookFailed": AlertLinks("scheduled_runbook", "scheduled-runbooks"),
    "JameyScheduledRunbookMissed": AlertLinks("scheduled_runbook", "scheduled-runbooks"),
}


def links_for_alert(alertname: str) -> AlertLinks | None:
    """The diagnosis and intended remediation of ``alertname``; None for an alert not in the rules."""
    return ALERT_LINKS.get(alertname)


def _existing_runbooks(available: Collection[str] | None) -> Collection[str]:
    if available is not None:
        return available
    return {path.stem for path in REPO_NOTEBOOKS.glob("*.ipynb")}


def runbook_for_alert(
    alertname: str, labels: Mapping[str, str] | None = None, available: Collection[str] | None = None
) -> RunbookLink | None:
    """The remediation runbook that acts on ``alertname``, with parameters filled from the alert's
    ``labels`` (a label that is missing leaves its parameter to the runbook's default); None when
    no remediation answers this alert or its notebook is not among ``available`` runbook names
    (default: the repository's notebooks/)."""
    found = ALERT_LINKS.get(alertname)
    if found is None or found.remediation is None or found.remediation not in _existing_runbooks(available):
        return None
    given = labels or {}
    return RunbookLink(
        found.remediation,
        {param: str(given[label]) for param, label in found.parameters.items() if label in given},
    )


def answers(runbook: str, available: Collection[str] | None = None) -> list[str]:
    """The alert names ``runbook`` serves, as their diagnosis or their (existing) remediation, sorted."""
    present = _existing_runbooks(available)
    return sorted(
        name
        for name, link in ALERT_LINKS.items()
        if link.diagnosis == runbook or (link.remediation == runbook and runbook in present)
    )


def rule_alert_names(rules_dir: Path) -> set[str]:
    """Every alert name in the rule files (``*.yml``) of ``rules_dir``."""
    import yaml

    names: set[str] = set()
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            names.update(str(rule["alert"]) for rule in group.get("rules", []) if "alert" in rule)
    return names


def runbook_page_url(base_url: str, link: RunbookLink) -> str:
    """The workbench URL that opens the Runbooks page with ``link``'s runbook chosen and its
    parameters filled: ``<base>/runbooks?runbook=prune_memories&layer=episodic``."""
    query = urlencode({"runbook": link.runbook, **link.parameters})
    return f"{base_url.rstrip('/')}/{RUNBOOKS_PAGE}?{query}"


def alert_docs_url(docs_url: str, alertname: str) -> str:
    """The page of the documentation site on one alert (written by tools/docs_reference.py from
    the rules and this mapping): ``<docs_url>/alerts/JameyBackupFailed/``."""
    return f"{docs_url.rstrip('/')}/{ALERT_DOCS_DIR}/{alertname}/"


def alert_page_url(base_url: str, alertname: str) -> str:
    """The workbench URL that opens the Alerts page on one alert and its evidence (what every
    rule's ``runbook_url`` is): ``<base>/alerts?alert=JameyBackupFailed``."""
    return f"{base_url.rstrip('/')}/{ALERTS_PAGE}?{urlencode({'alert': alertname})}"


def render_alert_rules(text: str, base_url: str) -> str:
    """Alert rules (YAML text) with every link to the workbench's Alerts and Runbooks pages moved
    from :data:`DEFAULT_WORKBENCH_URL` to ``base_url`` (JAMEY_WORKBENCH_URL); nothing else changes."""
    for page in (ALERTS_PAGE, RUNBOOKS_PAGE):
        text = text.replace(f"{DEFAULT_WORKBENCH_URL}/{page}?", f"{base_url.rstrip('/')}/{page}?")
    return text


def trusted_link(url: str, workbench_url: str) -> str | None:
    """``url`` when it may be shown as a live link: http(s), no user info, and on the workbench's
    own origin (``workbench_url``, JAMEY_WORKBENCH_URL), which is where the project's alert rules
    point. Any other URL (a ``runbook_url`` annotation is whatever Alertmanager was sent) is None:
    show it as text."""
    try:
        parts, base = urlsplit(url.strip()), urlsplit(workbench_url.strip())
        port, base_port = parts.port, base.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.username is not None or parts.password is not None:
        return None
    same_origin = (parts.scheme, (parts.hostname or "").lower(), port) == (
        base.scheme,
        (base.hostname or "").lower(),
        base_port,
    )
    return url.strip() if same_origin and parts.hostname else None
