"""Byte counts as people read them, and what a rewrite freed: one formatter and one formula for
every front door (CLI, workbench, runbooks, plans, the HTTP answers' ``delete_bytes``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
MiB = 1024 * 1024
#: The largest HTTP request body, by default: the service's JAMEY_MAX_BODY_BYTES and nginx's
#: ``client_max_body_size`` (``nginxconf``), so that what nginx passes the service accepts.
MAX_BODY_BYTES = 4 * MiB


def format_bytes(value: float) -> str:
    """``1536`` -> ``1.5 KiB``: binary units (KiB, MiB, GiB, TiB, never the decimal KB), one
    decimal; whole bytes below 1 KiB."""
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class Resized(Protocol):
    """Anything that rewrote (or would rewrite) a layer: its size before and after."""

    @property
    def bytes_before(self) -> int: ...

    @property
    def bytes_after(self) -> int: ...


def bytes_freed(result: Resized) -> int:
    """What ``result`` freed: its size before less after, never below zero (a layer that grew
    meanwhile, from writes during the rewrite, freed nothing)."""
    return max(result.bytes_before - result.bytes_after, 0)


def total_freed(results: Iterable[Resized]) -> int:
    """The bytes every one of ``results`` freed, summed."""
    return sum(bytes_freed(result) for result in results)
