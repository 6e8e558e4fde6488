"""Vault fixtures: a real small tmpfs for disk-full tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def tmpfs() -> Iterator[Any]:
    """mount_tmpfs(path, size): a real small tmpfs (we run as root), unmounted after the test."""
    mounted: list[Path] = []

    def mount_tmpfs(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=700", "tmpfs", str(path)], check=True
        )
        mounted.append(path)
        return path

    yield mount_tmpfs
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)
