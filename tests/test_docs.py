"""The documentation site: the pages generated from the code are current, and the site builds
with MkDocs in strict mode (a broken link or anchor fails), as `make docs` builds it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "docs_reference.py"), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


def test_the_generated_pages_match_the_code() -> None:
    result = run_generator("--check")
    assert result.returncode == 0, result.stderr


def docs_copy(tmp_path: Path) -> Path:
    """A copy of docs/ to spoil: the committed pages stay as they are for the tests beside."""
    copy = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", copy)
    return copy


def test_a_setting_missing_from_the_configuration_page_is_reported(tmp_path: Path) -> None:
    """--check compares, it does not only exist: a page that lost a row fails it."""
    page = docs_copy(tmp_path) / "reference" / "configuration.md"
    kept = page.read_text()
    page.write_text("\n".join(line for line in kept.splitlines() if "`JAMEY_PORT`" not in line) + "\n")
    result = run_generator("--check", "--docs", str(tmp_path / "docs"))
    assert result.returncode == 1
    assert "docs/reference/configuration.md" in result.stderr


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()
    assert (tmp_path / "site" / "alerts" / "index.html").is_file()


def test_a_hand_edited_alert_page_and_a_page_of_a_removed_alert_are_reported(tmp_path: Path) -> None:
    """The alert pages are generated too: an edit by hand, and a page whose alert left the
    rules, both fail --check; writing puts the one right and deletes the other."""
    docs = docs_copy(tmp_path)
    page, gone = docs / "alerts" / "JameyBackupFailed.md", docs / "alerts" / "JameyNoSuchAlert.md"
    kept = page.read_text()
    page.write_text(kept.replace("## Silencing", "## Silencing\n\nSilence it for a week."))
    gone.write_text("# JameyNoSuchAlert\n")
    result = run_generator("--check", "--docs", str(docs))
    assert result.returncode == 1
    assert "docs/alerts/JameyBackupFailed.md" in result.stderr
    assert "docs/alerts/JameyNoSuchAlert.md" in result.stderr
    assert run_generator("--docs", str(docs)).returncode == 0
    assert page.read_text() == kept and not gone.exists()


def test_every_alert_page_shows_each_of_its_rules_and_its_workbench_link() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from alert_pages import alert_rules, pages

    from jamey_engine.runbooks.alert_guides import GUIDES
    from jamey_engine.runbooks.links import ALERT_LINKS

    written = pages()
    for name, rules in alert_rules().items():
        text = written[f"alerts/{name}.md"]
        assert f"[{name}](alerts/{name}.md)" in written["alerts.md"]
        assert GUIDES[ALERT_LINKS[name].guide].silence in text
        for rule in rules:
            assert str(rule["expr"]).strip() in text, name
            assert f"### {rule['labels']['severity']}" in text, name
            assert rule["annotations"]["description"] in text, name
            assert rule["annotations"]["runbook_url"] in text, name
