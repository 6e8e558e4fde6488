"""The prune steps: preflight, plan, apply (backup, prune), verify.

The plan contract (``plans/``) and ``notebooks/prune_memories.ipynb`` (through
``runbooks.steps.PruneRunbook``) share them; they hold the rules and raise JameyError
subclasses, so the CLI or the workbench can reuse them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import pandas as pd

from jamey_engine.durations import parse_duration, utcnow
from jamey_engine.errors import InvalidInput, JameyError
from jamey_engine.memory.layers import LAYERS
from jamey_engine.memory.model import PruneResult
from jamey_engine.preflight.checks import Check, Checks, Decision, decide
from jamey_engine.progress import Progress
from jamey_engine.sizes import format_bytes

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.vault import BackupInfo


log = logging.getLogger(__name__)


def parse_layers(layer: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"all"`` -> every layer; ``"working"`` or ``"working,episodic"`` (or a list) -> those layers.

    Raises InvalidInput naming the field ``layer``, the value and the known layers.
    """
    from jamey_engine.memory import LAYERS

    names = [layer] if isinstance(layer, str) else list(layer)
    parts = [p.strip() for name in names for p in str(name).split(",") if p.strip()]
    if not parts:
        raise InvalidInput(f"layer {layer!r} is empty; use all or one of: {', '.join(LAYERS)}")
    if "all" in parts:
        return tuple(LAYERS)
    unknown = [p for p in parts if p not in LAYERS]
    if unknown:
        raise InvalidInput(f"layer {unknown[0]!r} is not a layer; use all or one of: {', '.join(LAYERS)}")
    return tuple(dict.fromkeys(parts))


class _LayerChange(Protocol):
    """What a rewrite plan knows of one layer (a LayerPlan or a LayerDedupePlan)."""

    @property
    def layer(self) -> str: ...
    @property
    def to_delete(self) -> int: ...
    @property
    def bytes_to_free(self) -> int: ...


LayerT = TypeVar("LayerT", bound=_LayerChange)


class RewritePlan(Generic[LayerT]):
    """What a plan that rewrites layers (a prune, a dedupe) shares: its per-layer plans and
    their totals. A frozen dataclass below declares ``layers`` and the phrase."""

    layers: tuple[LayerT, ...]

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(plan.layer for plan in self.layers)

    @property
    def total_to_delete(self) -> int:
        return sum(plan.to_delete for plan in self.layers)

    @property
    def total_bytes_to_free(self) -> int:
        return sum(plan.bytes_to_free for plan in self.layers)

    @property
    def nothing_to_do(self) -> bool:
        return self.total_to_delete == 0


@dataclass(frozen=True)
class LayerPlan:
    """What a prune would do to one layer."""

    layer: str
    documents: int
    bytes: int
    to_delete: int
    bytes_to_free: int


@dataclass(frozen=True)
class PrunePlan(RewritePlan[LayerPlan]):
    """The documents and bytes a prune would remove, and the phrase that confirms it."""

    older_than: str
    older_than_delta: timedelta
    cutoff: datetime
    layers: tuple[LayerPlan, ...]

    @property
    def phrase(self) -> str:
        """The exact text ``confirm`` must hold to apply this plan."""
        return f"prune {self.total_to_delete} memories older than {self.older_than}"

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: documents now, to delete, bytes now, bytes to free (an estimate)."""
        return pd.DataFrame(
            [
                {
                    "layer": p.layer,
                    "documents": p.documents,
                    "to_delete": p.to_delete,
                    "bytes": p.bytes,
                    "bytes_to_free (est.)": p.bytes_to_free,
                }
                for p in self.layers
            ]
        )


class _LayerResult(Protocol):
    @property
    def deleted(self) -> int: ...


PlanT = TypeVar("PlanT")
ResultT = TypeVar("ResultT", bound=_LayerResult)


@dataclass(frozen=True)
class RewriteOutcome(Generic[PlanT, ResultT]):
    """What an apply step that rewrites layers (prune, dedupe) did: the decision, the plan it
    followed, the backup taken, and each layer's result."""

    decision: Decision
    plan: PlanT
    backup: BackupInfo | None = None
    results: tuple[ResultT, ...] = ()
    duration_seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def applied(self) -> bool:
        return self.decision.go

    @property
    def deleted(self) -> int:
        return sum(result.deleted for result in self.results)


@dataclass(frozen=True)
class PruneOutcome(RewriteOutcome["PrunePlan", PruneResult]):
    """What the prune apply step did."""

    def to_frame(self) -> pd.DataFrame:
        """One row per layer pruned: deleted, bytes before and after."""
        return pd.DataFrame(
            [
                {
                    "layer": r.layer,
                    "deleted": r.deleted,
                    "bytes_before": r.bytes_before,
                    "bytes_after": r.bytes_after,
                }
                for r in self.results
            ],
            columns=["layer", "deleted", "bytes_before", "bytes_after"],
        )


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _switch_lock_check(engine: Engine, wait: float) -> Check:
    """Take and release the store's switch lock (what a prune needs) within ``wait`` seconds.

    Writers hold this lock shared while they commit; a writer that holds it for longer than
    ``wait`` (a long import, a stuck process) would make the prune wait and fail with Busy.
    Holding it exclusively for an instant pauses other writers for that instant only.
    """
    name = "writer lock"
    try:
        with engine.memory.generations.exclusive("prune preflight", timeout=wait):
            pass
    except JameyError as err:
        return Check(name, False, f"not free within {wait:g}s: {err.message}")
    return Check(name, True, f"free: no writer held it longer than {wait:g}s")


def prune_preflight(
    engine: Engine,
    layers: tuple[str, ...],
    *,
    backup_first: bool = True,
    lock_wait: float = 2.0,
    planned: PrunePlan | None = None,
) -> Checks:
    """Check, changing nothing, that a prune of ``layers`` can run now.

    Each index opens and answers a count; the disk holding the indexes has room for a rewrite
    of the layers (their size now), and the backup disk room for a backup (every layer's index
    size) when ``backup_first``; no writer holds the store's switch lock for longer than
    ``lock_wait``. Problems become failed checks, not exceptions. ``planned``, a plan made just
    before (whose dry run opened and counted each layer), is taken as the count and the size of
    its layers, which are then not measured again (the plan contract plans first).
    """
    checks: list[Check] = []
    sizes: dict[str, int] = {}
    for layer_plan in planned.layers if planned is not None else ():
        sizes[layer_plan.layer] = layer_plan.bytes
        checks.append(
            Check(
                f"{layer_plan.layer}: index opens",
                True,
                f"{layer_plan.documents} documents, {format_bytes(layer_plan.bytes)}: it answered the plan's count",
            )
        )
    for layer in layers:
        if layer in sizes:
            continue
        try:
            engine.memory.count(layer)  # opens the index and a searcher, not just its meta.json
            size = engine.memory.layer_size(layer)
        except JameyError as err:
            checks.append(Check(f"{layer}: index opens", False, err.message))
            continue
        sizes[layer] = size.bytes
        checks.append(
            Check(
                f"{layer}: index opens",
                True,
                f"{size.documents} documents, {format_bytes(size.bytes)} in {size.segments} segment(s)",
            )
        )
    settings = engine.settings
    needs: dict[int, tuple[Path, int, list[str]]] = {}

    def need(path: Path, amount: int, why: str) -> None:
        where = _existing(path)
        device = os.stat(where).st_dev
        old_path, old_amount, old_why = needs.get(device, (where, 0, []))
        needs[device] = (old_path, old_amount + amount, [*old_why, why])

    need(settings.memory_dir, sum(sizes.values()), "rewriting the pruned layers")
    if backup_first:
        # The backup copies every layer: the others' bytes on disk (a directory listing each).
        others = [layer for layer in LAYERS if layer not in sizes]
        total = sum(sizes.values())
        with contextlib.suppress(JameyError):  # a damaged layer fails its own check above
            total += sum(engine.memory.layer_bytes(others).values()) if others else 0
        need(settings.backup_dir, total, "the backup taken first")
    for where, amount, why in needs.values():
        free = shutil.disk_usage(where).free
        checks.append(
            Check(
                f"free disk at {where}",
                free >= amount,
                f"{format_bytes(free)} free, {format_bytes(amount)} needed for {' and '.join(why)}",
            )
        )
    checks.append(_switch_lock_check(engine, lock_wait))
    return Checks("Preflight", tuple(checks))


def plan_prune(engine: Engine, layers: tuple[str, ...], older_than: str) -> PrunePlan:
    """What a prune of memories older than ``older_than`` in ``layers`` would remove; changes nothing.

    One dry run of the prune per layer: its count of the old memories, the layer's documents and
    bytes, and the bytes it would free (the size scaled by the share that goes). Raises
    InvalidInput for a bad duration (field ``older_than``); StorageCorrupt or Busy from the store.
    """
    delta = parse_duration(older_than, field="older_than")
    cutoff = utcnow() - delta
    results = engine.memory.prune(delta, list(layers), dry_run=True)
    plans = tuple(
        LayerPlan(
            r.layer,
            r.documents_before,
            r.bytes_before,
            r.deleted,
            max(0, r.bytes_before - r.bytes_after),
        )
        for r in results
    )
    return PrunePlan(str(older_than).strip().lower(), delta, cutoff, plans)


def apply_prune(
    engine: Engine,
    plan: PrunePlan,
    *,
    dry_run: bool,
    confirm: object,
    backup_first: bool = True,
    progress: Progress | None = None,
) -> PruneOutcome:
    """Prune as planned, only when not ``dry_run`` and ``confirm`` equals the plan's phrase.

    The plan is made again first: when nothing is left to prune it is a no-op; when the count
    changed since ``plan`` the old phrase no longer matches and it refuses. Then a backup (when
    ``backup_first``), the prune, and one oplog record per layer (kind ``prune``) plus a
    ``prune`` event. A refusal, a dry run and a no-op change nothing. Raises Busy,
    StorageCorrupt or vault errors from the steps; a failed prune is recorded as a failure.
    """
    fresh = plan_prune(engine, plan.layer_names, plan.older_than) if not dry_run else plan
    decision = decide(
        action="prune",
        phrase=fresh.phrase,
        dry_run=dry_run,
        confirm=confirm,
        nothing_to_do=(
            f"no memory in {', '.join(fresh.layer_names)} is older than {fresh.older_than}."
            if fresh.nothing_to_do
            else None
        ),
    )
    notes: tuple[str, ...] = ()
    if decision.verdict == "refused" and fresh.phrase != plan.phrase:
        notes = (f"The plan changed since it was shown: it now says {fresh.phrase!r}.",)
    if not decision.go:
        return PruneOutcome(decision, fresh, notes=notes)
    label = f"before pruning memories older than {fresh.older_than}"
    backup = engine.vault.create(progress=progress, label=label, actor="runbook") if backup_first else None
    run = engine.prune(fresh.older_than_delta, list(fresh.layer_names), source="runbook", progress=progress)
    notes = (run.note,) if run.note else ()
    return PruneOutcome(decision, fresh, backup, tuple(run.results), run.duration, notes)


def verify_prune(engine: Engine, outcome: PruneOutcome, *, sample_query: str = "*") -> Checks:
    """Check the store after the apply step, changing nothing.

    Applied, per layer: documents now are the planned count minus those deleted (more only if
    memories were written meanwhile), no memory older than the plan's cutoff is left, and a
    sample search answers. Not applied: no layer lost documents.
    """
    plan = outcome.plan
    checks: list[Check] = []
    deleted = {r.layer: r.deleted for r in outcome.results}
    for layer_plan in plan.layers:
        layer = layer_plan.layer
        size = engine.memory.layer_size(layer)
        if outcome.applied:
            expected = layer_plan.documents - deleted.get(layer, 0)
            # A surplus is explained by writes made meanwhile; a shortfall (more gone than reported) is not.
            ok = size.documents >= expected
            extra = size.documents - expected
            detail = (
                f"{layer_plan.documents} before, {deleted.get(layer, 0)} deleted, {size.documents} now"
                + (f" ({extra} written meanwhile)" if extra > 0 else "")
                + f"; {format_bytes(layer_plan.bytes)} -> {format_bytes(size.bytes)}"
            )
            checks.append(Check(f"{layer}: documents and size", ok, detail))
            # The plan's cutoff is earlier than the one the prune used, so nothing may be left before it.
            left = engine.memory.search(layer, "*", limit=1, until=plan.cutoff)
            checks.append(
                Check(
                    f"{layer}: nothing older than {plan.older_than} left",
                    not left,
                    f"{'a' if left else 'no'} memory from before {plan.cutoff:%Y-%m-%d %H:%M:%S} UTC found",
                )
            )
            try:
                hits = engine.memory.search(layer, sample_query, limit=3, order="newest")
            except JameyError as err:
                checks.append(Check(f"{layer}: sample search", False, err.message))
            else:
                checks.append(
                    Check(
                        f"{layer}: sample search",
                        len(hits) == min(3, size.documents),
                        f"{len(hits)} hit(s) for {sample_query!r}, newest first",
                    )
                )
        else:
            checks.append(
                Check(
                    f"{layer}: unchanged",
                    size.documents >= layer_plan.documents,
                    f"{layer_plan.documents} documents at the plan, {size.documents} now",
                )
            )
    return Checks("Verification", tuple(checks))
