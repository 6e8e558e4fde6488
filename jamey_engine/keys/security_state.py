"""What a restore may do to keys: bring back the backup's keys without undoing a revocation.

A key revoked or rotated after a backup was taken was stopped for a reason (an incident, a
leak), so restoring that backup keeps it stopped unless the restorer says ``reenable_keys``.
The audit trail is history: the backup's entries are added to today's, never put in their place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The columns that say a key was stopped (revoked, or rotated away with its grace end).
STOP_COLUMNS = ("revoked_at", "grace_until", "rotated_to")

Row = Mapping[str, Any]


@dataclass(frozen=True)
class KeyMerge:
    """The api_keys and key_events rows a restore installs, and the keys it changes by name.

    ``kept_stopped``: keys the backup has working that stay revoked or rotated now;
    ``reenabled``: such keys brought back because ``reenable_keys`` was given;
    ``removed``: keys that exist now but not in the backup (created after it).
    Each entry is ``{"id": ..., "name": ...}``.
    """

    keys: list[dict[str, Any]]
    events: list[dict[str, Any]]
    kept_stopped: list[dict[str, str]] = field(default_factory=list)
    reenabled: list[dict[str, str]] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[dict[str, str]]]:
        """The keys named by change: kept stopped, re-enabled, removed."""
        return {"kept_stopped": self.kept_stopped, "reenabled": self.reenabled, "removed": self.removed}


def _stopped_since(current: Row, backup: Row) -> bool:
    """True when ``current`` was revoked or rotated and the backup's copy of the key was not."""
    return any(current.get(column) is not None and backup.get(column) is None for column in STOP_COLUMNS)


def _named(row: Row) -> dict[str, str]:
    return {"id": str(row["id"]), "name": str(row["name"])}


def merge_keys(
    current_keys: Sequence[Row],
    backup_keys: Sequence[Row],
    current_events: Sequence[Row],
    backup_events: Sequence[Row],
    *,
    reenable_keys: bool = False,
) -> KeyMerge:
    """The key rows and audit rows a restore of ``backup_*`` over ``current_*`` installs.

    Keys: the backup's rows, except that a key stopped since the backup keeps its stop columns
    (unless ``reenable_keys``), and a key created since by rotating one of the backup's keys
    stays beside it (the rotation is kept, so its replacement must be). Other keys created since
    the backup are removed. Events: today's all kept with their ids, and the backup's that are
    missing today appended (with fresh ids where today's history used the id for another entry).
    """
    now_by_id = {str(row["id"]): row for row in current_keys}
    backup_ids = {str(row["id"]) for row in backup_keys}
    merge = KeyMerge(keys=[], events=[])
    for row in backup_keys:
        key = dict(row)
        current = now_by_id.get(str(row["id"]))
        if current is not None and _stopped_since(current, row):
            if reenable_keys:
                merge.reenabled.append(_named(row))
            else:
                key.update({column: current.get(column) for column in STOP_COLUMNS})
                merge.kept_stopped.append(_named(row))
        merge.keys.append(key)
    kept_rotations = {key["rotated_to"] for key in merge.keys if key.get("rotated_to")}
    for key_id, row in now_by_id.items():
        if key_id in backup_ids:
            continue
        if key_id in kept_rotations:
            merge.keys.append(dict(row))
        else:
            merge.removed.append(_named(row))
    merge.events.extend(dict(row) for row in current_events)
    today = {int(row["id"]): row for row in current_events}
    next_id = max([*today, *(int(row["id"]) for row in backup_events)], default=0) + 1
    for row in backup_events:
        same = today.get(int(row["id"]))
        if same is not None and _same_event(same, row):
            continue
        event = dict(row)
        if same is not None:
            event["id"] = next_id
            next_id += 1
        merge.events.append(event)
    merge.events.sort(key=lambda event: int(event["id"]))
    return merge


def _same_event(one: Row, other: Row) -> bool:
    return all(str(one.get(name)) == str(other.get(name)) for name in ("event", "key_id", "actor"))
