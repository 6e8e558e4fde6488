"""The jamey command as a whole: one program under two names, and errors without tracebacks."""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from jamey_engine.cli import cli


def test_jamey_and_python_dash_m_are_the_same_program() -> None:
    by_module = subprocess.run(
        [sys.executable, "-m", "jamey_engine", "--help"], capture_output=True, text=True, check=True
    )
    jamey = Path(sys.executable).with_name("jamey")
    by_script = subprocess.run([str(jamey), "--help"], capture_output=True, text=True, check=True)
    assert by_module.stdout == by_script.stdout
    assert "memory" in by_module.stdout


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["status"], env={"JAMEY_DATA_DIR": str(tmp_path), "JAMEY_PORT": "eighty"}
    )
    assert result.exit_code == 2, result.output
    assert "JAMEY_PORT" in result.output and "'eighty'" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bad_setting_in_a_real_process_shows_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jamey_engine", "status"],
        capture_output=True,
        text=True,
        env={"JAMEY_DATA_DIR": str(tmp_path), "JAMEY_GLOBAL_RATE_LIMIT": "fast", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: Setting JAMEY_GLOBAL_RATE_LIMIT='fast' is invalid")
    assert "Traceback" not in proc.stderr


def test_serve_refuses_a_data_dir_it_cannot_write_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "memory").write_text("a file where the indexes go")
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "serve", "--port", "1"])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"error: data dir {tmp_path / 'memory'} cannot be used: File exists"


def test_stack_status_without_a_stack_says_how_to_start_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "stack", "status"])
    assert result.exit_code == 1, result.output
    assert "no stack has run on this data dir" in result.output and "Traceback" not in result.output


def test_stack_refuses_a_scrape_interval_prometheus_cannot_use(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "stack", "--scrape-interval", "1.5s"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: --scrape-interval must be whole seconds, 1s or more, got '1.5s'"
