"""Runbook links in alert annotations: the section of the repository's Markdown they point at."""

from __future__ import annotations

import re
from pathlib import Path

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
