"""Private at rest: owner-only files everywhere Jamey writes, and a shared data dir refused by
every front door (CLI, service, workbench, stack, notebooks' engine) unless allowed."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from helpers import free_port, make_settings, wait_until_listening
from notebook_runner import run_notebook
from seed_data import seed
from streamlit.testing.v1 import AppTest

from jamey_engine.cli import cli
from jamey_engine.engine import Engine
from jamey_engine.errors import DataDirNotPrivate
from jamey_engine.privacy import check_data_dir
from jamey_engine.stack import Stack, StackPorts

ROOT = Path(__file__).resolve().parents[1]


def shared_entries(root: Path) -> list[str]:
    """Every file or directory under ``root`` (itself included) that group or others can access."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {mode:04o}")
    return found


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Run the block as a new user's shell would: umask 022 (files 0644, directories 0755)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def shared_dir(tmp_path: Path) -> Path:
    """A data dir as `mkdir` under umask 022 makes it: 0755."""
    path = tmp_path / "shared"
    path.mkdir()
    path.chmod(0o755)
    return path


def jamey(*args: str, env: dict[str, str], umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jamey_engine", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        umask=umask,
    )


def process_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "JAMEY_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    for name in ("JAMEY_DATABASE_URL", "JAMEY_BACKUP_DIR", "API_KEY", "JAMEY_ALLOW_SHARED_DATA_DIR"):
        env.pop(name, None)
    return {**env, **extra}


def test_service_cli_backup_and_runbook_leave_nothing_readable_by_group_or_others(
    tmp_path: Path, loose_umask: None
) -> None:
    data_dir = tmp_path / "data"  # does not exist: the service creates it
    env = process_env(data_dir, JAMEY_LOG_LEVEL="info")
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        service = subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "serve", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            umask=0o022,
        )
    try:
        wait_until_listening(service, port, timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        for layer in ("working", "episodic"):
            stored = jamey("memory", "store", "--layer", layer, f"a private note in {layer}", env=env)
            assert stored.returncode == 0, stored.stderr
        created = jamey("keys", "create", "--name", "ops", "--scope", "admin", env=env)
        assert created.returncode == 0, created.stderr
        backup = jamey("backup", "create", "--json", env=env)
        assert backup.returncode == 0, backup.stderr
        backup_id = json.loads(backup.stdout)["id"]
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
        # A runbook run (papermill and its kernel) that writes: a real restore, with its
        # safety backup and a new generation of every layer, while the service runs.
        run = run_notebook(
            "restore_backup.ipynb",
            tmp_path,
            data_dir=str(data_dir),
            backup_id=backup_id,
            dry_run=False,
            confirm=f"restore {backup_id}",
        )
        assert "Safety backup of the data before the restore:" in run.text
    finally:
        service.terminate()
        service.wait(20)
    assert (data_dir / "jamey.db").exists() and list((data_dir / "backups").glob("*.tar.zst"))
    assert not shared_entries(data_dir), shared_entries(data_dir)


def test_the_cli_refuses_a_shared_data_dir_naming_path_mode_and_fix(shared_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(shared_dir), "backup", "list"])
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert line == (
        f"error: data directory {shared_dir} has mode 0755, so group or others can access it; "
        f"fix it with: chmod 700 {shared_dir} (or set JAMEY_ALLOW_SHARED_DATA_DIR=1 when access "
        "is managed with groups on purpose)"
    )
    assert not (shared_dir / "jamey.db").exists()


def test_the_service_refuses_a_shared_data_dir_in_one_line(shared_dir: Path) -> None:
    result = jamey("serve", "--port", str(free_port()), env=process_env(shared_dir))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: data directory {shared_dir} has mode 0755, so group or others can access it; "
        f"fix it with: chmod 700 {shared_dir} (or set JAMEY_ALLOW_SHARED_DATA_DIR=1 when access "
        "is managed with groups on purpose)"
    ]


def test_the_service_starts_on_a_shared_data_dir_with_the_escape_hatch_and_warns_once(
    shared_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = process_env(shared_dir, JAMEY_ALLOW_SHARED_DATA_DIR="1")
    with log_path.open("wb") as log_file:
        service = subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "serve", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        wait_until_listening(service, port, timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        service.terminate()
        service.wait(20)
    assert log_path.read_text().count("going on because JAMEY_ALLOW_SHARED_DATA_DIR=1") == 1


def test_the_stack_refuses_a_shared_data_dir_before_starting_anything(shared_dir: Path) -> None:
    stack = Stack(make_settings(shared_dir), StackPorts(), workbench=False, echo=lambda text: None)
    with pytest.raises(DataDirNotPrivate, match=r"mode 0755.*chmod 700"):
        stack.start()
    assert stack.supervisor is None and not (shared_dir / "stack").exists()
    result = jamey("stack", "--no-workbench", env=process_env(shared_dir))
    assert result.returncode == 1 and "chmod 700" in result.stderr, result.stderr


def test_the_engine_of_notebooks_refuses_a_shared_data_dir(shared_dir: Path) -> None:
    with pytest.raises(DataDirNotPrivate) as raised:
        Engine(make_settings(shared_dir))
    assert raised.value.path == shared_dir and raised.value.mode == 0o755


def test_the_workbench_refuses_a_shared_data_dir(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAMEY_DATA_DIR", str(shared_dir))
    monkeypatch.delenv("JAMEY_ALLOW_SHARED_DATA_DIR", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert [error.value for error in at.error] == [
        f"data directory {shared_dir} has mode 0755, so group or others can access it; "
        f"fix it with: chmod 700 {shared_dir} (or set JAMEY_ALLOW_SHARED_DATA_DIR=1 when access "
        "is managed with groups on purpose)"
    ]
    monkeypatch.setenv("JAMEY_ALLOW_SHARED_DATA_DIR", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error, at.error
    assert at.text_input(key="signin_key") is not None


def test_the_escape_hatch_is_accepted_by_every_front_door_and_warns_once(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(shared_dir, JAMEY_ALLOW_SHARED_DATA_DIR="1")
    with caplog.at_level(logging.WARNING, logger="jamey_engine.privacy"):
        for _ in range(3):
            Engine(settings).close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "jamey_engine.privacy"]
    assert len(warnings) == 1 and f"{shared_dir} has mode 0755" in warnings[0]
    env = process_env(shared_dir, JAMEY_ALLOW_SHARED_DATA_DIR="1")
    result = jamey("backup", "list", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("JAMEY_ALLOW_SHARED_DATA_DIR=1") == 1, result.stderr
    with caplog.at_level(logging.WARNING, logger="jamey_engine.privacy"):
        check_data_dir(settings)  # what Stack.prepare() runs before it launches anything: no raise
    warnings = [r.getMessage() for r in caplog.records if r.name == "jamey_engine.privacy"]
    assert len(warnings) == 1, "the stack's check accepts the dir without warning again"
    assert stat.S_IMODE(shared_dir.stat().st_mode) == 0o755, "the check leaves the mode alone"


def test_the_check_creates_a_missing_data_dir_owner_only(tmp_path: Path, loose_umask: None) -> None:
    data_dir = tmp_path / "new" / "data"
    engine = Engine(make_settings(data_dir))
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        seed(engine)
    finally:
        engine.close()
    assert not shared_entries(data_dir), shared_entries(data_dir)
