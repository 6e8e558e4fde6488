"""Retention on the memory store: each layer's cut-off from its policy, applied through the store's prune.

A :class:`Policy` holds ``max_age`` and/or ``max_bytes``. For one layer:

- **age**: memories stamped before ``now - max_age`` go;
- **size**: when the layer's bytes are over ``max_bytes``, the oldest memories go until the
  layer holds at most ``TARGET_FRACTION`` (90%) of it. The number of documents to keep is
  ``floor(0.9 * max_bytes / bytes per document)``; the cut-off is found from the per-day
  document counts (then per hour, minute and second inside the day where the cut falls), so
  every memory kept is newer than every memory removed.

The cut-off is the later of the two, always a whole second. :func:`apply_layer` removes what
is stamped before it with ``MemoryStore.prune`` (the one compaction: writes keep flowing and a
killed run leaves the old generation in place), then measures the layer again: a size-capped
layer still over 90% of its cap (bytes per document differ between old and new memories, and
writes arrive meanwhile) is cut again from the measured figures, at most ``MAX_PASSES`` times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import tantivy

from jamey_engine.durations import utcnow
from jamey_engine.memory.schema import SCHEMA, TIMESTAMP
from jamey_engine.progress import Progress, no_progress

if TYPE_CHECKING:
    from jamey_engine.memory.model import LayerSize, PruneResult
    from jamey_engine.memory.store import MemoryStore

TARGET_FRACTION = 0.9
MAX_PASSES = 3
# Each cut aims this much under the target: a compacted index does not shrink exactly in
# proportion to the documents removed (term dictionaries, segment files).
MARGIN = 0.97
# Finer and finer histograms inside the bucket where the cut falls; the first is per day.
_LEVELS = (("1d", 86_400), ("1h", 3_600), ("1m", 60), ("1s", 1))
# tantivy refuses histograms over 65,000 buckets; a layer spanning more days starts coarser.
_MAX_DAY_BUCKETS = 60_000


@dataclass(frozen=True)
class Policy:
    """A layer's limits: ``max_age`` (memories older go) and ``max_bytes`` (the size cap); None: no limit."""

    max_age: timedelta | None = None
    max_bytes: int | None = None

    @property
    def empty(self) -> bool:
        """True when the policy limits nothing."""
        return self.max_age is None and self.max_bytes is None


@dataclass(frozen=True)
class LayerPlan:
    """What retention would remove from a layer now: the documents stamped before ``cutoff``.

    ``delete_bytes`` is an estimate (the layer's bytes per document times the documents);
    ``reason`` names the limits that set the cut-off (``max_age``, ``max_bytes``, both, or ``none``).
    """

    layer: str
    documents: int
    bytes: int
    delete_documents: int
    delete_bytes: int
    cutoff: datetime | None
    reason: str


@dataclass(frozen=True)
class LayerOutcome:
    """What an apply removed from a layer: documents, bytes before and after, the last cut-off, passes."""

    layer: str
    deleted: int
    bytes_before: int
    bytes_after: int
    documents_after: int
    cutoff: datetime | None
    passes: int
    reason: str = "none"


def _whole_second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def _range(start: datetime | None, end: datetime | None) -> tantivy.Query:
    if start is None and end is None:
        return tantivy.Query.all_query()
    return tantivy.Query.range_query(
        SCHEMA, TIMESTAMP, tantivy.FieldType.Date, start, end, include_lower=True, include_upper=False
    )


def _histogram(searcher: Any, interval: str, start: datetime | None, end: datetime | None) -> list[Any]:
    spec = {"h": {"date_histogram": {"field": TIMESTAMP, "fixed_interval": interval, "min_doc_count": 1}}}
    buckets = searcher.aggregate(_range(start, end), spec)["h"]["buckets"]
    return [(int(bucket["key"]), int(bucket["doc_count"])) for bucket in buckets]


def _edge(searcher: Any, order: tantivy.Order) -> datetime:
    hits = searcher.search(
        tantivy.Query.all_query(), 1, count=False, order_by_field=TIMESTAMP, order=order
    ).hits
    stamp: datetime = searcher.doc(hits[0][1]).get_first(TIMESTAMP)
    return stamp


def keep_newest_cutoff(searcher: Any, keep: int) -> datetime | None:
    """The earliest whole second such that at most ``keep`` documents are stamped at or after it.

    None when every document fits (nothing to cut). Reads only histograms: per day first, then
    per hour, minute and second inside the bucket where the cut falls; the second that holds the
    cut goes entirely, so ties never keep more than ``keep``.
    """
    total = int(searcher.num_docs)
    if total <= max(keep, 0):
        return None
    keep = max(keep, 0)
    levels: list[tuple[str, int]] = list(_LEVELS)
    span = _edge(searcher, tantivy.Order.Desc) - _edge(searcher, tantivy.Order.Asc)
    if span.days > _MAX_DAY_BUCKETS:
        levels.insert(0, ("1000d", 86_400_000))
    start: datetime | None = None
    end: datetime | None = None
    newer = 0  # documents stamped at or after ``end``
    for interval, seconds in levels:
        for key, count in reversed(_histogram(searcher, interval, start, end)):
            if newer + count > keep:
                start = datetime.fromtimestamp(key / 1000, UTC)
                end = start + timedelta(seconds=seconds)
                break
            newer += count
        else:  # the window's documents all fit (only if counts moved meanwhile)
            return start
    return end


def count_before(searcher: Any, cutoff: datetime) -> int:
    """Documents stamped before ``cutoff``."""
    return int(searcher.search(_range(None, cutoff), 1, count=True).count)


def plan_layer(
    store: MemoryStore, layer: str, policy: Policy, *, now: datetime | None = None, trigger: float = 1.0
) -> LayerPlan:
    """What applying ``policy`` to ``layer`` would remove now. Changes nothing.

    The size limit acts when the layer's bytes exceed ``trigger * max_bytes`` (the cap itself
    on a first pass; apply's later passes use 0.9). Raises StorageCorrupt for a damaged layer.
    """
    store.flush_layer(layer)  # memories still in the write-ahead log count as well
    size = store.layer_size(layer)
    searcher = store.index(layer).searcher()
    documents = int(searcher.num_docs)
    cutoffs: list[tuple[datetime, str]] = []
    if policy.max_age is not None:
        moment = (now or utcnow()) - policy.max_age
        cutoffs.append((_whole_second(moment), "max_age"))
    if policy.max_bytes is not None and documents and size.bytes > trigger * policy.max_bytes:
        per_document = size.bytes / documents
        keep = math.floor(MARGIN * TARGET_FRACTION * policy.max_bytes / per_document)
        cut = keep_newest_cutoff(searcher, keep)
        if cut is not None:
            cutoffs.append((cut, "max_bytes"))
    if not cutoffs:
        return LayerPlan(layer, documents, size.bytes, 0, 0, None, "none")
    cutoff = max(moment for moment, _ in cutoffs)
    reasons = sorted({reason for moment, reason in cutoffs if moment == cutoff})
    if not documents:
        return LayerPlan(layer, 0, size.bytes, 0, 0, cutoff, "+".join(reasons))
    doomed = count_before(searcher, cutoff)
    estimate = round(size.bytes * doomed / documents)
    return LayerPlan(layer, documents, size.bytes, doomed, estimate, cutoff, "+".join(reasons))


def _cut_to_keep(store: MemoryStore, layer: str, keep: int) -> LayerPlan:
    """The plan that keeps the newest ``keep`` documents of ``layer``."""
    store.flush_layer(layer)
    size = store.layer_size(layer)
    searcher = store.index(layer).searcher()
    documents = int(searcher.num_docs)
    cutoff = keep_newest_cutoff(searcher, keep)
    if cutoff is None or not documents:
        return LayerPlan(layer, documents, size.bytes, 0, 0, None, "none")
    doomed = count_before(searcher, cutoff)
    return LayerPlan(
        layer, documents, size.bytes, doomed, round(size.bytes * doomed / documents), cutoff, "max_bytes"
    )


def later_keep(now: LayerSize, last: PruneResult, target: float) -> int:
    """How many of the newest memories a later pass keeps, the layer being ``now`` after ``last``.

    The next memories to go are the oldest, like the ones ``last`` removed: their cost is fitted
    on what it freed per memory (an index's fixed costs do not shrink with it), but never less
    than half the layer's average, so a pass that freed little (a rewrite packs its documents a
    little differently each time) cannot read as memories costing nothing and take the whole
    layer; a cut that falls short is measured and cut again.
    """
    average = now.bytes / now.documents
    freed = (last.bytes_before - now.bytes) / last.deleted if last.deleted else average
    marginal = min(max(freed, average / 2), average)
    extra = math.ceil((now.bytes - MARGIN * target) / marginal)
    return max(now.documents - extra, 0)


def apply_layer(
    store: MemoryStore, layer: str, policy: Policy, *, progress: Progress | None = None
) -> LayerOutcome:
    """Apply ``policy`` to ``layer`` through ``MemoryStore.prune``, at most MAX_PASSES prunes.

    The first cut comes from the layer's bytes per document; a later one (when the layer is
    still over 90% of its cap) from what the previous prune freed per document removed (an
    index's fixed costs do not shrink with it), never less than half the layer's average, so
    no pass takes more than twice what is still over. Guarantees: every memory kept is stamped at or
    after every memory removed; memories written meanwhile are kept (the prune's catch-up); a
    size-capped layer ends at most 90% of its cap unless three passes did not get it there
    (writes arriving faster than the prune removes). Raises Busy, StorageCorrupt.
    """
    report = progress or no_progress
    plan = plan_layer(store, layer, policy)
    bytes_before, first_reason = plan.bytes, plan.reason
    deleted = 0
    passes = 0
    cutoff: datetime | None = None
    while plan.cutoff is not None and plan.delete_documents > 0 and passes < MAX_PASSES:
        passes += 1
        [result] = store.prune(None, [layer], before=plan.cutoff, progress=report)
        deleted += result.deleted
        cutoff = plan.cutoff if cutoff is None else max(cutoff, plan.cutoff)
        if policy.max_bytes is None:
            break
        target = TARGET_FRACTION * policy.max_bytes
        now = store.layer_size(layer)
        if now.bytes <= target or not now.documents:
            break
        plan = _cut_to_keep(store, layer, later_keep(now, result, target))
    after = store.layer_size(layer)
    reason = first_reason if passes else "none"
    return LayerOutcome(layer, deleted, bytes_before, after.bytes, after.documents, cutoff, passes, reason)
