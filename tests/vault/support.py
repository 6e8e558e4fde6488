"""Vault test helpers: memories in every layer, keys in every state, and the state to compare."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jamey_engine.engine import Engine
from jamey_engine.memory import LAYERS

BASE_TIME = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def fill(engine: Engine, per_layer: int = 12, content_bytes: int = 0) -> None:
    """Memories in every layer (explicit timestamps) and keys: active, limited, revoked, expiring."""
    for index, layer in enumerate(LAYERS):
        items = []
        for n in range(per_layer):
            text = f"{layer} memory {n} about topic{n % 3} and alpha"
            if content_bytes:
                text += " " + base64.b64encode(os.urandom(content_bytes * 3 // 4)).decode()
            items.append({"content": text, "timestamp": BASE_TIME + timedelta(hours=index, minutes=n)})
        engine.memory.store_batch(layer, items)
    keys = engine.keys
    keys.create("reader", scopes=("memory:read",))
    keys.create("writer", scopes=("memory:read", "memory:write"), rate_limit="10/second")
    keys.create("admin", scopes=("admin",), expires_in=timedelta(days=30))
    gone = keys.create("gone", scopes=("memory:read",))
    keys.revoke(gone.id)


def memories(engine: Engine, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    """Every memory of every layer (id, content, timestamp), sorted by id."""
    out = {}
    for layer in LAYERS:
        path = tmp / f"export-{layer}.jsonl"
        engine.memory.export_jsonl(layer, path)
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out[layer] = sorted(rows, key=lambda row: str(row["id"]))
        path.unlink()
    return out


def state(engine: Engine, tmp: Path) -> dict[str, Any]:
    """What must survive a round trip: the memories and the key rows (hashes, scopes, limits, revocations)."""
    rows = engine.db.dump()
    return {"memories": memories(engine, tmp), "keys": rows["api_keys"], "key_events": rows["key_events"]}


def change_everything(engine: Engine) -> None:
    """Make the live state differ from a backup in every way a restore must undo."""
    for layer in LAYERS:
        engine.memory.store(layer, f"added after the backup to {layer}")
    first = engine.memory.search("working", "alpha", limit=1)[0]
    engine.memory.delete("working", first.id)
    engine.keys.create("newcomer", scopes=("admin",))
    reader = next(info for info in engine.keys.list() if info.name == "reader")
    engine.keys.revoke(reader.id)


def restored_to(after: dict[str, Any], before: dict[str, Any]) -> bool:
    """``after`` (a state() after a restore with reenable_keys) is ``before`` (the state backed
    up): the same memories and key rows, and the key audit appended to, never replaced (the
    events made since the backup stay after the backup's own)."""
    events = before["key_events"]
    return (
        after["memories"] == before["memories"]
        and after["keys"] == before["keys"]
        and after["key_events"][: len(events)] == events
    )
