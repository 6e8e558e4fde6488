"""The one byte formatter and the one "bytes freed" formula."""

from __future__ import annotations

from dataclasses import dataclass

from jamey_engine.sizes import bytes_freed, format_bytes, total_freed


def test_format_bytes_uses_binary_units_and_their_binary_names() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 1024**3) == "3.0 GiB"
    assert format_bytes(5 * 1024**5) == "5120.0 TiB"
    assert "KB" not in format_bytes(2048) and "MB" not in format_bytes(2 * 1024**2)


@dataclass(frozen=True)
class Rewrite:
    bytes_before: int
    bytes_after: int


def test_bytes_freed_is_before_less_after_and_never_negative() -> None:
    assert bytes_freed(Rewrite(1000, 400)) == 600
    assert bytes_freed(Rewrite(400, 1000)) == 0, "a layer that grew during the rewrite freed nothing"
    assert total_freed([Rewrite(1000, 400), Rewrite(10, 20), Rewrite(5, 0)]) == 605
