"""Which runbook answers an alert, and where its form is: the one mapping every front door uses
(the Alerts page's "Run runbook", the alert rules' ``runbook_url``, notifications). Also the
section of the repository's Markdown that an older, file-style runbook link points at."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

RUNBOOKS_PAGE = "runbooks"  # the workbench page's URL path
# The base the alert rules in prometheus/rules/ are written with (JAMEY_WORKBENCH_URL's default);
# render_alert_rules puts the configured base in its place.
DEFAULT_WORKBENCH_URL = "http://127.0.0.1:8501"


@dataclass(frozen=True)
class RunbookLink:
    """A runbook to run and the parameters to fill in its form."""

    runbook: str
    parameters: dict[str, str] = field(default_factory=dict)


# alert name -> (runbook, {runbook parameter: alert label it is filled from})
_ALERT_RUNBOOKS: dict[str, tuple[str, dict[str, str]]] = {
    "JameyMemoryIndexTooLarge": ("prune_memories", {"layer": "layer"}),
}


def runbook_for_alert(alertname: str, labels: Mapping[str, str] | None = None) -> RunbookLink | None:
    """The runbook that acts on ``alertname``, with parameters filled from the alert's
    ``labels`` (a label that is missing leaves its parameter to the runbook's default); None when
    no runbook answers this alert."""
    found = _ALERT_RUNBOOKS.get(alertname)
    if found is None:
        return None
    runbook, from_labels = found
    given = labels or {}
    return RunbookLink(
        runbook, {param: str(given[label]) for param, label in from_labels.items() if label in given}
    )


def runbook_page_url(base_url: str, link: RunbookLink) -> str:
    """The workbench URL that opens the Runbooks page with ``link``'s runbook chosen and its
    parameters filled: ``<base>/runbooks?runbook=prune_memories&layer=episodic``."""
    query = urlencode({"runbook": link.runbook, **link.parameters})
    return f"{base_url.rstrip('/')}/{RUNBOOKS_PAGE}?{query}"


def render_alert_rules(text: str, base_url: str) -> str:
    """Alert rules (YAML text) with every link to the workbench's Runbooks page moved from
    :data:`DEFAULT_WORKBENCH_URL` to ``base_url`` (JAMEY_WORKBENCH_URL); nothing else changes."""
    return text.replace(
        f"{DEFAULT_WORKBENCH_URL}/{RUNBOOKS_PAGE}?", f"{base_url.rstrip('/')}/{RUNBOOKS_PAGE}?"
    )


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def heading_slug(text: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to -."""
    kept = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return kept.replace(" ", "-")


def runbook_section(runbook_url: str, repo_root: Path) -> str | None:
    """The Markdown of the section a repository-relative runbook link points at
    (``README.md#runbook-high-error-rate``), or None when the link is not a Markdown file inside
    ``repo_root``, or names no such heading. Never reads outside ``repo_root``."""
    path_text, _, anchor = runbook_url.partition("#")
    if not path_text.endswith(".md") or "://" in path_text:
        return None
    root = repo_root.resolve()
    path = (root / path_text).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not anchor:
        return "\n".join(lines).strip() or None
    start: int | None = None
    level = 0
    in_code = False
    for number, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if not match:
            continue
        if start is None and heading_slug(match.group(2)) == anchor:
            start, level = number, len(match.group(1))
        elif start is not None and len(match.group(1)) <= level:
            return "\n".join(lines[start:number]).strip()
    return "\n".join(lines[start:]).strip() if start is not None else None


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
