"""The dedupe steps: plan (the duplicates per layer), apply (backup, dedupe) and verify.

They hold the rules and raise JameyError subclasses, so the plan contract (``plans/``), the
dedupe runbook (``runbooks.dedupe``), the CLI and the workbench reuse them. The safety is the
prune steps': a dry run by default, a confirmation phrase naming the count, a backup first, the
same preflight (the layers open, free disk for the rewrite and the backup, the switch lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from jamey_engine.errors import JameyError
from jamey_engine.memory.dedupe import DedupeResult, DuplicateScan, duplicates_frame, find_duplicates
from jamey_engine.preflight.checks import Check, Checks, decide
from jamey_engine.preflight.prune_steps import RewriteOutcome, RewritePlan
from jamey_engine.progress import Progress
from jamey_engine.sizes import total_freed

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

SHOWN_GROUPS = 20
VERIFY_GROUPS = 50


@dataclass(frozen=True)
class LayerDedupePlan:
    """What a dedupe would do to one layer."""

    layer: str
    documents: int
    bytes: int
    scan: DuplicateScan

    @property
    def to_delete(self) -> int:
        return self.scan.repeats

    @property
    def bytes_to_free(self) -> int:
        """An estimate: the layer's size scaled by the share of documents that go."""
        return round(self.bytes * self.to_delete / self.documents) if self.documents else 0


@dataclass(frozen=True)
class DedupePlan(RewritePlan[LayerDedupePlan]):
    """The duplicates a dedupe would delete, per layer, and the phrase that confirms it."""

    layers: tuple[LayerDedupePlan, ...]

    @property
    def total_groups(self) -> int:
        return sum(len(plan.scan.groups) for plan in self.layers)

    @property
    def phrase(self) -> str:
        """The exact text ``confirm`` must hold to apply this plan."""
        from jamey_engine.memory import LAYERS

        where = "all layers" if set(self.layer_names) == set(LAYERS) else ", ".join(self.layer_names)
        return f"dedupe {self.total_to_delete} duplicate memories in {where}"

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: documents, duplicate groups, to delete, bytes now, bytes to free (est.)."""
        return pd.DataFrame(
            [
                {
                    "layer": p.layer,
                    "documents": p.documents,
                    "groups": len(p.scan.groups),
                    "to_delete": p.to_delete,
                    "repeat_content_bytes": p.scan.repeat_bytes,
                    "bytes": p.bytes,
                    "bytes_to_free (est.)": p.bytes_to_free,
                }
                for p in self.layers
            ]
        )

    def groups_frame(self, top: int = SHOWN_GROUPS) -> pd.DataFrame:
        """The ``top`` biggest groups across the layers (see ``memory.dedupe.duplicates_frame``)."""
        return duplicates_frame([p.scan for p in self.layers]).head(top)


@dataclass(frozen=True)
class DedupeOutcome(RewriteOutcome[DedupePlan, DedupeResult]):
    """What the dedupe apply step did."""

    @property
    def bytes_freed(self) -> int:
        return total_freed(self.results)

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: groups, deleted, bytes before and after."""
        return pd.DataFrame(
            [
                {
                    "layer": r.layer,
                    "groups": r.groups,
                    "deleted": r.deleted,
                    "bytes_before": r.bytes_before,
                    "bytes_after": r.bytes_after,
                }
                for r in self.results
            ],
            columns=["layer", "groups", "deleted", "bytes_before", "bytes_after"],
        )


def plan_dedupe(engine: Engine, layers: tuple[str, ...]) -> DedupePlan:
    """The duplicate groups of ``layers`` and what deleting their repeats would free; changes nothing.

    Raises StorageCorrupt or Busy from the store.
    """
    plans = []
    for layer in layers:
        size = engine.memory.layer_size(layer)
        scan = find_duplicates(engine.memory.index(layer).searcher(), layer)
        plans.append(LayerDedupePlan(layer, scan.documents, size.bytes, scan))
    return DedupePlan(tuple(plans))


def apply_dedupe(
    engine: Engine,
    plan: DedupePlan,
    *,
    dry_run: bool,
    confirm: object,
    backup_first: bool = True,
    progress: Progress | None = None,
) -> DedupeOutcome:
    """Dedupe as planned, only when not ``dry_run`` and ``confirm`` equals the plan's phrase.

    The plan is made again first: nothing left is a no-op; a changed count changes the phrase,
    so the old one is refused. Then a backup (when ``backup_first``), the dedupe and one
    ``dedupe`` oplog record per layer (``Engine.dedupe``). A refusal, a dry run and a no-op
    change nothing. Raises Busy, StorageCorrupt or vault errors from the steps.
    """
    fresh = plan_dedupe(engine, plan.layer_names) if not dry_run else plan
    decision = decide(
        action="dedupe",
        phrase=fresh.phrase,
        dry_run=dry_run,
        confirm=confirm,
        nothing_to_do=(
            f"no duplicate memories in {', '.join(fresh.layer_names)}." if fresh.nothing_to_do else None
        ),
    )
    notes: tuple[str, ...] = ()
    if decision.verdict == "refused" and fresh.phrase != plan.phrase:
        notes = (f"The plan changed since it was shown: it now says {fresh.phrase!r}.",)
    if not decision.go:
        return DedupeOutcome(decision, fresh, notes=notes)
    backup = (
        engine.vault.create(progress=progress, label="before removing duplicate memories", actor="runbook")
        if backup_first
        else None
    )
    run = engine.dedupe(list(fresh.layer_names), source="runbook", progress=progress)
    notes = (run.note,) if run.note else ()
    return DedupeOutcome(decision, fresh, backup, tuple(run.results), run.duration, notes)


def verify_dedupe(engine: Engine, outcome: DedupeOutcome) -> Checks:
    """Check the store after the apply step, changing nothing.

    Applied, per layer: documents now are the planned count minus those deleted (more only if
    memories were written meanwhile); duplicates left are no more than those writes; the oldest
    memory of each planned group (up to 50) is still there. Not applied: no layer lost documents.
    """
    checks: list[Check] = []
    deleted = {r.layer: r.deleted for r in outcome.results}
    for layer_plan in outcome.plan.layers:
        layer = layer_plan.layer
        now = engine.memory.count(layer)
        if not outcome.applied:
            checks.append(
                Check(
                    f"{layer}: unchanged",
                    now >= layer_plan.documents,
                    f"{layer_plan.documents} documents at the plan, {now} now",
                )
            )
            continue
        expected = layer_plan.documents - deleted.get(layer, 0)
        extra = now - expected
        checks.append(
            Check(
                f"{layer}: documents",
                extra >= 0,
                f"{layer_plan.documents} before, {deleted.get(layer, 0)} deleted, {now} now"
                + (f" ({extra} written meanwhile)" if extra > 0 else ""),
            )
        )
        left = find_duplicates(engine.memory.index(layer).searcher(), layer).repeats
        checks.append(
            Check(
                f"{layer}: no duplicates left",
                left <= max(extra, 0),
                f"{left} duplicate(s) now" + (" (written meanwhile)" if left else ""),
            )
        )
        groups = layer_plan.scan.groups[:VERIFY_GROUPS]
        missing = []
        for group in groups:
            try:
                engine.memory.get(layer, group.keep_id)
            except JameyError:
                missing.append(group.keep_id)
        checks.append(
            Check(
                f"{layer}: oldest copies kept",
                not missing,
                f"{len(groups) - len(missing)} of {len(groups)} checked groups keep their oldest memory"
                + (f"; missing {', '.join(missing[:3])}" if missing else ""),
            )
        )
    return Checks("Verification", tuple(checks))
