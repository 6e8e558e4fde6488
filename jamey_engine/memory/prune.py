"""Prune by compaction: rewrite a layer's surviving memories into a new generation, then switch.

tantivy's deletes only mark documents, and tantivy-py exposes no merge policy, so deleting
in place frees no disk. Instead:

1. Under the EXCLUSIVE switch lock (held for an instant, so no commit is in flight) take a
   snapshot searcher of the current generation and a clock reading ``t0``.
2. Without any lock, copy the snapshot's documents the selection keeps (for a prune, those
   with timestamp >= cutoff) into a new generation (one writer, one commit), reusing their
   stored fields. Writers carry on.
3. Under the EXCLUSIVE lock again, bring the new generation up to date: documents whose
   ``added`` stamp is from ``t0`` on were committed during the copy and are added (if young
   enough); recent ids that vanished were deleted and are deleted. If an older document was
   deleted meanwhile (counts disagree) or the generation was switched by someone else, the
   attempt is abandoned and the next one copies again, the last attempt wholly under the lock.
4. Write the pointer, release the lock, remove the old generation directory.

Every writer stamps ``added`` while holding the SHARED lock, so a document committed after
step 1 carries a stamp >= ``t0``; a small margin covers clock jitter between processes.

:func:`compact_layer` is the machinery, for any :class:`Selection` made from the snapshot;
:func:`prune_layer` selects by age, and ``memory.dedupe`` selects all but the oldest copy of
each duplicate.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import tantivy

from jamey_engine.memory.generations import dir_size
from jamey_engine.memory.model import PruneResult
from jamey_engine.memory.schema import ADDED, ID, SCHEMA, TIMESTAMP, create_index, open_index
from jamey_engine.progress import Progress, no_progress

if TYPE_CHECKING:
    from jamey_engine.memory.store import MemoryStore

log = logging.getLogger(__name__)

COPY_HEAP = 1_000_000_000  # an upper bound: the arena grows only as documents arrive
# One indexing thread: the copy writes one segment, in the old index's order. Two threads copy
# faster (a 1,000,000-memory size cap applied in 3.84 s against 5.49 s, bench_retention) but
# write two segments, each with its own term dictionary, and unpredictably sized at small
# scales: a retention pass that removed 582 of 9,000 memories left its layer 2% larger, so a
# size cap could not converge (and the fit of a later pass read it as memories costing nothing).
COPY_THREADS = 1
CLOCK_MARGIN_NS = 2_000_000_000
ATTEMPTS = 3
PROGRESS_EVERY = 20_000


def _before(cutoff: datetime) -> tantivy.Query:
    return tantivy.Query.range_query(
        SCHEMA, TIMESTAMP, tantivy.FieldType.Date, None, cutoff, include_upper=False
    )


def _from(cutoff: datetime) -> tantivy.Query:
    return tantivy.Query.range_query(SCHEMA, TIMESTAMP, tantivy.FieldType.Date, cutoff, None)


def _added_since(stamp: int) -> tantivy.Query:
    return tantivy.Query.range_query(SCHEMA, ADDED, tantivy.FieldType.Integer, stamp, None)


@dataclass(frozen=True)
class Selection:
    """Which documents of a snapshot a compaction keeps, and which commits made meanwhile it adds.

    ``query`` picks the candidates; ``keep`` (when set) tests each candidate's stored document
    as it is copied; ``keep_new`` tests a document committed during the copy.
    """

    query: tantivy.Query
    keep: Callable[[tantivy.Document], bool] | None
    keep_new: Callable[[tantivy.Document], bool]


Selector = Callable[[Any], Selection]


def _all_hits(searcher: Any, query: tantivy.Query) -> list[Any]:
    total = int(searcher.num_docs)
    if total == 0:
        return []
    return list(searcher.search(query, total, count=False).hits)


def prune_layer(
    store: MemoryStore, layer: str, cutoff: datetime, *, dry_run: bool, progress: Progress | None
) -> PruneResult:
    """Remove ``layer``'s memories with timestamp < ``cutoff`` and free their disk.

    A dry run, or a layer with nothing to remove, changes nothing. Raises Busy when the switch
    lock stays taken past the lock timeout, StorageCorrupt for a damaged layer.
    """
    searcher = store.index(layer).searcher()
    doomed = int(searcher.search(_before(cutoff), 1, count=True).count)  # type: ignore[attr-defined]
    bytes_before = dir_size(store.layer_path(layer))
    if dry_run or doomed == 0:
        total = int(searcher.num_docs)
        estimate = bytes_before if not doomed else round(bytes_before * (total - doomed) / total)
        return PruneResult(layer, doomed, bytes_before, estimate, dry_run, total)

    def young(doc: tantivy.Document) -> bool:
        when = doc.get_first(TIMESTAMP)
        return isinstance(when, datetime) and when >= cutoff

    selection = Selection(_from(cutoff), None, young)
    return compact_layer(store, layer, lambda snapshot: selection, progress, what="prune")


def compact_layer(
    store: MemoryStore, layer: str, select: Selector, progress: Progress | None, *, what: str
) -> PruneResult:
    """Rewrite ``layer`` keeping what ``select(snapshot searcher)`` selects, free the rest's disk.

    ``select`` runs once per attempt on that attempt's snapshot, so a selection computed from
    the documents (duplicates) matches exactly what is copied. Commits made during the copy
    are carried over (``keep_new``), deletions made meanwhile are honoured, and an older
    document deleted meanwhile makes the attempt copy again (see the module docstring).
    ``deleted`` in the result counts documents now gone. Raises Busy, StorageCorrupt.
    """
    with store.generations.building():  # so a stray sweep never takes the generation being built
        for attempt in range(1, ATTEMPTS + 1):
            result = _compact(
                store, layer, select, progress or no_progress, locked=attempt == ATTEMPTS, what=what
            )
            if result is not None:
                return result
            log.info("layer %s changed during compaction; copying again (attempt %d)", layer, attempt + 1)
    raise AssertionError("the last attempt holds the lock and cannot be abandoned")


def _compact(
    store: MemoryStore, layer: str, select: Selector, report: Progress, *, locked: bool, what: str
) -> PruneResult | None:
    gens = store.generations
    what = f"{what} of layer {layer!r}"
    outer: AbstractContextManager[Any] = gens.exclusive(what) if locked else nullcontext()
    with outer:
        inner = nullcontext if locked else (lambda: gens.exclusive(what))
        with inner():
            generation = gens.read()[layer]
            old_index = open_index(gens.layer_path(layer, generation), layer)
            old_index.reload()
            snapshot = old_index.searcher()
            t0 = time.time_ns() - CLOCK_MARGIN_NS
        new_generation, new_path = gens.new_generation(layer)
        try:
            selection = select(snapshot)
            recent = _copy(snapshot, new_path, selection, t0, report)
            with inner():
                if gens.read()[layer] != generation:
                    shutil.rmtree(new_path, ignore_errors=True)
                    return None
                old_index.reload()
                fresh = old_index.searcher()
                if not _catch_up(fresh, snapshot, recent, new_path, selection, t0, layer):
                    shutil.rmtree(new_path, ignore_errors=True)
                    return None
                old_path = gens.layer_path(layer, generation)
                bytes_before = dir_size(old_path)
                before = int(fresh.num_docs)
                after_index = open_index(new_path, layer)
                after = int(after_index.searcher().num_docs)
                mapping = gens.read()
                mapping[layer] = new_generation
                gens.write(mapping)
        except BaseException:
            if gens.read().get(layer) != new_generation:  # not switched yet: leave no trace
                shutil.rmtree(new_path, ignore_errors=True)
            raise
    gens.remove_generation(layer, generation)
    gens.sweep(layer)
    report(1, 1, "switched")
    return PruneResult(layer, before - after, bytes_before, dir_size(new_path), False, before)


def _copy(snapshot: Any, new_path: Any, selection: Selection, t0: int, report: Progress) -> set[str]:
    """Copy the snapshot's selected documents into a new index; return the ids stamped since t0."""
    index = create_index(new_path)
    writer = index.writer(COPY_HEAP, COPY_THREADS)
    try:
        survivors = _all_hits(snapshot, selection.query)
        total = len(survivors)
        doc, add, keep = snapshot.doc, writer.add_document, selection.keep
        for done, (_, address) in enumerate(survivors, start=1):
            document = doc(address)
            if keep is None or keep(document):
                add(document)
            if done % PROGRESS_EVERY == 0:
                report(done, total, "copying")
        report(total, total, "committing")
        writer.commit()
    except BaseException:
        writer.rollback()
        raise
    finally:
        writer.wait_merging_threads()
    return {snapshot.doc(address).get_first(ID) for _, address in _all_hits(snapshot, _added_since(t0))}


def _catch_up(
    fresh: Any, snapshot: Any, recent: set[str], new_path: Any, selection: Selection, t0: int, layer: str
) -> bool:
    """Apply commits made during the copy to the new generation; False if it cannot be done safely."""
    latest = _all_hits(fresh, _added_since(t0))
    if int(fresh.num_docs) - len(latest) != int(snapshot.num_docs) - len(recent):
        return False  # an older document was deleted meanwhile: copy again
    latest_docs = [fresh.doc(address) for _, address in latest]
    latest_ids = {doc.get_first(ID) for doc in latest_docs}
    additions = [doc for doc in latest_docs if doc.get_first(ID) not in recent and selection.keep_new(doc)]
    removals = recent - latest_ids
    if not additions and not removals:
        return True
    index = open_index(new_path, layer)
    writer = index.writer(64_000_000, 1)
    try:
        for doc in additions:
            writer.add_document(doc)
        for memory_id in removals:
            writer.delete_documents_by_term(ID, memory_id)
        writer.commit()
    except BaseException:
        writer.rollback()
        raise
    finally:
        writer.wait_merging_threads()
    return True
