"""Fixtures for the memory store tests: a real store on a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jamey_engine.memory import MemoryStore


@pytest.fixture
def memory_root(data_dir: Path) -> Path:
    return data_dir / "memory"


@pytest.fixture
def store(memory_root: Path) -> Iterator[MemoryStore]:
    memory = MemoryStore(memory_root, max_content_bytes=1000, lock_timeout=2.0)
    yield memory
    memory.close()
