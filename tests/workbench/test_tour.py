"""The workbench tour (`make screenshots`, tools/screenshots.py) in a real Chromium: every page
opens signed in as an admin with no exception, no icon code shown as text and no raw ISO time;
and the checks it makes catch what they name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import screenshots  # tools/ is a folder of scripts, not a package


def test_the_checks_name_an_icon_code_a_raw_iso_time_and_an_exception() -> None:
    found = screenshots.problems_on("overview", "✓ fine :material/check_circle: 2026-12-06T01:02:03+00:00")
    assert [f.problem for f in found] == [
        "an icon code shown as text: :material/check_circle:",
        "a raw ISO timestamp: 2026-12-06T01:02:03+00:00",
    ]
    assert screenshots.problems_on("alerts", "Traceback (most recent call last)")[0].problem == (
        "an exception is shown"
    )
    assert screenshots.problems_on("keys", "since 2026-12-06 01:02:03 UTC") == []


@pytest.mark.browser
@pytest.mark.slow
def test_every_page_of_the_tour_renders_cleanly_in_chromium(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "screenshots.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(
        name for _title, name in screenshots.PAGES
    )
