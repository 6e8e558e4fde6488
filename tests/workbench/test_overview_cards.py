"""The Overview's headline card for backups tells "no sample yet" from "no backup", and its
installation table shows status icons, not Markdown icon codes as text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from promserver import launch_prometheus
from streamlit.testing.v1 import AppTest

from jamey_engine.engine import Engine

from .conftest import open_page


@pytest.fixture
def empty_prometheus(tmp_path: Path, wb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real Prometheus that has scraped nothing yet: every query answers with no sample, as
    right after `make run` starts."""
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    url, process = launch_prometheus(workdir, "global:\n  scrape_interval: 1h\n", workdir / "tsdb")
    monkeypatch.setenv("PROMETHEUS_URL", url)
    monkeypatch.setenv("PROMETHEUS_TIMEOUT", "10")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def backup_card(at: AppTest) -> str:
    """The third headline card (error rate, p95, backup, size): its value and its note."""
    values = [m.value for m in at.markdown if m.value.startswith("### :")]
    notes = [c.value for c in at.caption]
    note = notes[notes.index("Last good backup") + 1]
    return f"{values[2]} | {note}"


@pytest.mark.usefixtures("empty_prometheus")
def test_with_no_sample_yet_the_backup_card_reads_the_catalog_not_none(
    admin_app: AppTest, engine: Engine
) -> None:
    engine.vault.create()
    open_page(admin_app, "overview")
    assert not admin_app.exception, admin_app.exception
    card = backup_card(admin_app)
    assert "none yet" not in card, card
    assert " ago" in card and "from the backup catalog" in card, card
    assert "critical" not in card, card


@pytest.mark.usefixtures("empty_prometheus")
def test_with_no_sample_and_no_backup_the_card_says_none_yet(admin_app: AppTest) -> None:
    open_page(admin_app, "overview")
    assert not admin_app.exception, admin_app.exception
    card = backup_card(admin_app)
    assert "none yet" in card and "critical" in card, card


@pytest.mark.usefixtures("wb_env")
def test_the_installation_table_shows_icons_not_icon_codes(admin_app: AppTest) -> None:
    open_page(admin_app, "overview")
    table = admin_app.dataframe[-1].value
    assert set(table["check"]) >= {"data dir permissions", "backups"}
    icons = set(table.iloc[:, 0])
    assert icons <= {"✓", "⚠", "✗"} and icons, icons
    assert not any(":material/" in str(cell) for cell in table.iloc[:, 0])
