"""The Overview page shows the findings of `jamey doctor`, computed by the engine."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from .conftest import open_page, texts


def test_overview_shows_the_installation_findings_and_what_needs_action(
    admin_app: AppTest, wb_env: Path
) -> None:
    at = open_page(admin_app, "overview")
    assert not at.exception, at.exception
    assert "Installation" in texts(at)
    table = at.dataframe[-1].value
    checks = dict(zip(table["check"], table["status"], strict=True))
    assert checks["data dir permissions"] == "ok" and checks["database version"] == "ok"
    assert checks["backups"] == "warning"  # none taken yet
    assert "need action" not in texts(at)

    (wb_env / "jamey.db").chmod(0o644)
    at = at.run()
    assert "1 problem(s) need action (the same list as `jamey doctor`)." in texts(at)
    table = at.dataframe[-1].value
    row = table[table["check"] == "data dir contents"].iloc[0]
    assert row["status"] == "problem" and f"{wb_env / 'jamey.db'} 0644" in row["detail"]
    assert row["fix"] == f"chmod -R go-rwx {wb_env}"


def test_overview_shows_the_backups_off_site_state_the_last_drill_and_unsigned_backups(
    admin_app: AppTest, wb_env: Path
) -> None:
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    at = open_page(admin_app, "overview")
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Backups off-site" in shown
    for label in ("Newest backup", "Last remote copy", "Last restore drill", "Unsigned backups"):
        assert label in shown, label
    assert "none yet" in shown and "JAMEY_BACKUP_REMOTE" in shown  # no backup, no remote

    engine = Engine(Settings.from_env())
    try:
        backup = engine.vault.create()
    finally:
        engine.close()
    shown = texts(at.run())
    assert "local only" in shown and "every backup is signed" in shown and "never" in shown
    assert backup.id  # the newest backup is the one just taken, not on any remote
