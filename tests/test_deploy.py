"""deploy/: the systemd units, their environment file and `make deploy-check`, with the real tools."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jamey_engine.config import SETTINGS
from jamey_engine.deploy import ENV_TEMPLATE, SYSTEMD_DIR, env_template

REPO = Path(__file__).resolve().parent.parent
UNITS = ("jamey.service", "jamey-workbench.service")


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jamey_engine.deploy", "check", *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip


def test_the_environment_file_is_the_settings_table_and_names_every_setting() -> None:
    assert ENV_TEMPLATE.read_text() == env_template(), (
        "regenerate: python -m jamey_engine.deploy env-template > deploy/systemd/jamey.env"
    )
    text = ENV_TEMPLATE.read_text()
    missing = [s.env for s in SETTINGS if f"{s.env}=" not in text]
    assert not missing, missing


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_runs_unprivileged_restarts_on_failure_and_is_hardened(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD_DIR / unit)
    service = parser["Service"]
    assert service["User"] == "jamey" and service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "jamey" and service["EnvironmentFile"] == "/etc/jamey/jamey.env"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }.items():
        assert service[key] == value, (unit, key)


def test_make_deploy_check_passes_on_the_shipped_configuration() -> None:
    make = shutil.which("make")
    assert make is not None, "make is needed: apt-get install make"
    done = subprocess.run(
        [make, "--no-print-directory", "deploy-check", f"BIN={Path(sys.executable).parent}"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    checks = (
        "systemd-analyze verify",
        "systemd-analyze security",
        "nginx -t",
        "promtool check config",
        "amtool",
    )
    for check in checks:
        assert any(line.startswith("ok") and check in line for line in done.stdout.splitlines()), done.stdout


def test_a_misspelt_hardening_option_fails_the_check(tmp_path: Path) -> None:
    for unit in (*UNITS, "jamey.env"):
        shutil.copy(SYSTEMD_DIR / unit, tmp_path / unit)
    broken = tmp_path / "jamey.service"
    broken.write_text(broken.read_text().replace("\nNoNewPrivileges=yes", "\nNoNewPrivilege=yes"))
    done = run_check("--units", str(tmp_path))
    assert done.returncode == 1, done.stdout
    assert "FAIL systemd-analyze verify" in done.stdout
    assert "jamey.service:" in done.stdout and "Unknown key 'NoNewPrivilege'" in done.stdout


def test_a_unit_whose_program_is_missing_fails_the_check(tmp_path: Path) -> None:
    for unit in (*UNITS, "jamey.env"):
        shutil.copy(SYSTEMD_DIR / unit, tmp_path / unit)
    broken = tmp_path / "jamey-workbench.service"
    broken.write_text(
        broken.read_text().replace("/opt/jamey/venv/bin/python", "/opt/jamey/venv/bin/no-such-python")
    )
    done = run_check("--units", str(tmp_path))
    assert done.returncode == 1, done.stdout
    assert "no-such-python is not executable" in done.stdout


def test_a_unit_stripped_of_its_hardening_fails_the_exposure_check(tmp_path: Path) -> None:
    for unit in (*UNITS, "jamey.env"):
        shutil.copy(SYSTEMD_DIR / unit, tmp_path / unit)
    stripped = tmp_path / "jamey.service"
    kept = [
        line
        for line in stripped.read_text().splitlines()
        if not line.startswith(("Protect", "Private", "Restrict", "SystemCall", "Capability", "NoNew"))
    ]
    stripped.write_text("\n".join(kept) + "\n")
    done = run_check("--units", str(tmp_path))
    assert done.returncode == 1, done.stdout
    assert "ok   systemd-analyze verify" in done.stdout, "still a valid unit"
    assert "FAIL systemd-analyze security" in done.stdout and "jamey.service:" in done.stdout
