"""The diagnosis's log lines from journald (observability/journal.py): the parser of
``journalctl -o json``, finding the systemd unit, and the choice between the journal and the
stack's log file.

This machine has ``journalctl`` (systemd 252) but no journal: PID 1 is not systemd and
``journalctl -o json`` prints nothing. So the real ``journalctl`` is run for the unreadable case
(the diagnosis falls back to the log file), and the readable case runs a stand-in ``journalctl``
on PATH that prints entries in journalctl's JSON format (one object a line, ``__REALTIME_TIMESTAMP``
in microseconds, ``PRIORITY`` as text, ``MESSAGE`` as text or, when not UTF-8, an array of bytes)
and records its command line.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import make_settings

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.journal import (
    parse_journal,
    read_journal,
    systemd_unit,
    unit_from_cgroup,
)
from jamey_engine.runbooks.diagnosis import diagnose


def _entry(at: datetime, message: object, priority: str | None = "6", **extra: object) -> str:
    item: dict[str, object] = {
        "__REALTIME_TIMESTAMP": str(int(at.timestamp() * 1_000_000)),
        "__MONOTONIC_TIMESTAMP": "123456789",
        "_SYSTEMD_UNIT": "jamey.service",
        "SYSLOG_IDENTIFIER": "jamey",
        "_PID": "4242",
        "MESSAGE": message,
        **extra,
    }
    if priority is not None:
        item["PRIORITY"] = priority
    return json.dumps(item)


def test_the_parser_reads_journalctl_json_lines_oldest_first() -> None:
    now = utcnow().replace(microsecond=0)
    lines = [
        _entry(now, "request served"),
        _entry(now - timedelta(seconds=30), "backup failed: No space left on device", "3"),
        _entry(now - timedelta(seconds=20), list("flush failed \xff".encode("latin-1")), "4"),
        _entry(now - timedelta(seconds=10), None),  # too large: journalctl writes null
        "not json",
        json.dumps(["an", "array"]),
        _entry(now - timedelta(seconds=5), "Traceback (most recent call last):", None),
    ]
    entries = parse_journal(lines)
    assert [entry.message for entry in entries] == [
        "backup failed: No space left on device",
        "flush failed \ufffd",
        "Traceback (most recent call last):",
        "request served",
    ]
    assert [entry.noteworthy for entry in entries] == [True, True, True, False]
    assert entries[0].at == now - timedelta(seconds=30) and entries[0].at.tzinfo == UTC
    assert (
        entries[0].line()
        == f"{now - timedelta(seconds=30):%Y-%m-%dT%H:%M:%SZ} jamey[4242]: backup failed: No space left on device"
    )


def test_the_unit_comes_from_the_cgroup_under_systemd_only(tmp_path: Path) -> None:
    assert unit_from_cgroup("0::/system.slice/jamey.service\n") == "jamey.service"
    assert unit_from_cgroup("12:pids:/\n1:name=systemd:/system.slice/jamey-workbench.service\n") == (
        "jamey-workbench.service"
    )
    assert unit_from_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n") is None
    # This machine's own cgroup (a container, not a systemd service).
    assert unit_from_cgroup(Path("/proc/self/cgroup").read_text()) is None
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/system.slice/jamey.service\n")
    assert systemd_unit("", {}, cgroup) is None  # not started by systemd
    assert systemd_unit("", {"INVOCATION_ID": "5f1c"}, cgroup) == "jamey.service"
    assert systemd_unit("jamey@blue.service", {}, cgroup) == "jamey@blue.service"  # JAMEY_SYSTEMD_UNIT


def test_a_journal_this_machine_cannot_read_is_none() -> None:
    assert shutil.which("journalctl"), "journalctl is part of the machine's systemd package"
    unit = f"jamey-test-{uuid.uuid4().hex[:8]}.service"
    assert read_journal(unit, utcnow() - timedelta(hours=1)) is None
    assert read_journal(unit, utcnow(), journalctl="/nonexistent/journalctl") is None


def _stand_in(bin_dir: Path, lines: list[str], calls: Path) -> None:
    """A ``journalctl`` on PATH that records its arguments and prints ``lines``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    out = bin_dir / "entries.jsonl"
    out.write_text("".join(line + "\n" for line in lines))
    script = bin_dir / "journalctl"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {calls}\ncat {out}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def unit_engine(data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine whose JAMEY_SYSTEMD_UNIT is the test's parameter."""
    engine = Engine(make_settings(data_dir, JAMEY_SYSTEMD_UNIT=request.param))
    yield engine
    engine.close()


@pytest.mark.parametrize("unit_engine", ["jamey.service"], indirect=True)
def test_under_systemd_the_diagnosis_reads_the_unit_s_journal(
    unit_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = unit_engine
    now = utcnow()
    calls = tmp_path / "calls.txt"
    _stand_in(
        tmp_path / "bin",
        [
            _entry(now - timedelta(minutes=3), "GET /health 200"),
            _entry(now - timedelta(minutes=2), "backup failed: No space left on device", "3"),
            _entry(now - timedelta(minutes=1), "WARNING jamey.memory: flush failed (LockBusy)", "6"),
        ],
        calls,
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    starts = now - timedelta(minutes=10)
    found = diagnose(engine, None, "JameyBackupFailed", {}, starts)
    assert [line.split(" ", 1)[1] for line in found.log_lines] == [
        "jamey[4242]: backup failed: No space left on device",
        "jamey[4242]: WARNING jamey.memory: flush failed (LockBusy)",
    ]
    assert found.evidence["log_problems"] == 2
    assert found.evidence["log_source"] == "journald (jamey.service)"
    arguments = calls.read_text().split()
    assert arguments[:4] == ["-u", "jamey.service", "-o", "json"]
    since = int(arguments[arguments.index("--since") + 1].lstrip("@"))
    assert since == int((starts - timedelta(hours=1)).timestamp())


@pytest.mark.parametrize("unit_engine", ["jamey-test-never-installed.service"], indirect=True)
def test_an_unreadable_journal_falls_back_to_the_stack_s_log_file(unit_engine: Engine) -> None:
    engine = unit_engine
    log = engine.settings.data_dir / "stack" / "service.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("INFO jamey: ok\nERROR jamey.vault: backup failed: No space left on device\n")
    found = diagnose(engine, None, "JameyBackupFailed", {})  # the real journalctl: nothing readable here
    assert found.log_lines == ["ERROR jamey.vault: backup failed: No space left on device"]
    assert found.evidence["log_source"] == "stack/service.log"
    assert any("is not readable here; trying the log file" in note for note in found.notes)
