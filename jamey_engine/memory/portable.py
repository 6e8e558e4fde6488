"""Moving whole layers in and out: snapshots for backups, staged restores, validation.

tantivy writes every segment file once and never changes it; only meta.json and
.managed.json are replaced (atomically) by commits and merges. So a consistent copy of a
live index is: read meta.json once, then hard-link exactly the segment files it names. If a
merge removed one of them meanwhile, start again from a newer meta.json.
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import tantivy

from jamey_engine.errors import InvalidInput, StorageCorrupt
from jamey_engine.fsutil import fsync_path
from jamey_engine.memory.generations import Generations, link_or_copy
from jamey_engine.memory.layers import LAYERS
from jamey_engine.memory.schema import (
    LOCK_FILES,
    is_tantivy_failure,
    live_documents,
    open_index,
    segment_file_prefixes,
    to_memory,
)

if TYPE_CHECKING:
    from jamey_engine.memory.store import MemoryStore

COPY_ATTEMPTS = 20


def copy_index(source: Path, target: Path, layer: str) -> int:
    """Copy (hard links where possible) a consistent version of the index at ``source``.

    Returns the documents it holds. Raises StorageCorrupt if ``source`` is unreadable.
    """
    for _ in range(COPY_ATTEMPTS):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            raw = (source / "meta.json").read_bytes()
            meta = json.loads(raw)
        except (OSError, ValueError) as err:
            raise StorageCorrupt(
                f"layer {layer!r}: {source / 'meta.json'} is unreadable ({err})", str(source)
            ) from None
        prefixes = segment_file_prefixes(meta)
        names = sorted(
            entry.name
            for entry in source.iterdir()
            if entry.name.split(".", 1)[0] in prefixes and entry.name not in LOCK_FILES
        )
        try:
            for name in names:
                link_or_copy(source / name, target / name)
        except FileNotFoundError:
            continue  # a merge replaced segments between reading meta.json and linking
        (target / "meta.json").write_bytes(raw)
        (target / ".managed.json").write_text(json.dumps([*names, "meta.json"]))
        return live_documents(meta)
    raise StorageCorrupt(
        f"layer {layer!r}: {source} kept changing; no consistent copy after {COPY_ATTEMPTS} tries",
        str(source),
    )


def snapshot(store: MemoryStore, dest: Path) -> dict[str, int]:
    """Copy every layer's current generation into dest/<layer>/ as of one moment.

    Queued writes of this process are committed first, and every layer's write-ahead log (any
    process's acknowledged writes) is flushed into the index, so the copy holds every write
    acknowledged before this call; the copy is taken under the SHARED
    switch lock, so no prune or restore replaces a generation meanwhile. Returns docs per layer.
    """
    store.flush()
    mapping = store.generations.ensure()
    dest.mkdir(parents=True, exist_ok=True)
    counts = {}
    with store.generations.shared("snapshot"):
        mapping = store.generations.read()
        for layer in LAYERS:
            counts[layer] = copy_index(
                store.generations.layer_path(layer, mapping[layer]), dest / layer, layer
            )
    return counts


def validate_layers(src: Path) -> dict[str, int]:
    """Open each staged index src/<layer>/, run a query and read its first documents.

    Returns documents per layer. Raises StorageCorrupt naming the layer and path of the first
    index that is missing or unusable.
    """
    counts = {}
    for layer in LAYERS:
        path = src / layer
        index = open_index(path, layer)
        try:
            searcher = index.searcher()
            hits = searcher.search(tantivy.Query.all_query(), 10, count=True)
            for _, address in hits.hits:
                to_memory(searcher.doc(address), layer)
            counts[layer] = int(searcher.num_docs)
        except BaseException as err:
            if not (is_tantivy_failure(err) or isinstance(err, TypeError)):
                raise
            raise StorageCorrupt(
                f"layer {layer!r}: index at {path} cannot be read ({err})", str(path)
            ) from None
    return counts


def restore_layers(store: MemoryStore, src: Path) -> None:
    """Install src/<layer>/ as new generations of all five layers and switch to them at once.

    The staged indexes are validated first (StorageCorrupt, nothing changed), then linked (or
    copied) and flushed to disk, then the pointer names all five in one atomic rename under
    the EXCLUSIVE lock. Every process picks the new generations up on its next operation.
    """
    if not src.is_dir():
        raise InvalidInput(f"restore source {src} is not a directory")
    validate_layers(src)
    gens = store.generations
    gens.ensure()
    with gens.building():  # so a stray sweep never takes the staged generations
        _restore_staged(store, gens, src)


def _restore_staged(store: MemoryStore, gens: Generations, src: Path) -> None:
    staged = stage_generations(store, src, validated=True)
    try:
        previous = switch_generations(store, {**gens.read(), **staged}, discard_log=True)
    except BaseException:
        named = gens.read()
        for layer, name in staged.items():
            if named.get(layer) != name:  # not switched: leave no trace
                gens.remove_generation(layer, name)
        raise
    for layer in LAYERS:
        if previous.get(layer) and previous[layer] != staged[layer]:
            gens.remove_generation(layer, previous[layer])
        gens.sweep(layer)


def stage_generations(store: MemoryStore, src: Path, *, validated: bool = False) -> dict[str, str]:
    """Install src/<layer>/ as new generations of every layer without switching to them;
    returns {layer: generation}. Validates the staged indexes first unless ``validated``
    (StorageCorrupt, nothing left behind). The files are linked (or copied) and flushed to disk.
    Hold :meth:`Generations.building` (or pin the names) until they are switched in or removed.
    """
    if not validated:
        validate_layers(src)
    gens = store.generations
    gens.ensure()
    staged: dict[str, str] = {}
    try:
        for layer in LAYERS:
            name, path = gens.new_generation(layer)
            staged[layer] = name
            for entry in sorted((src / layer).iterdir()):
                if entry.is_file() and entry.name not in LOCK_FILES:
                    link_or_copy(entry, path / entry.name)
                    fsync_path(path / entry.name)
            fsync_path(path)
            open_index(path, layer)
    except BaseException:
        for layer, name in staged.items():
            gens.remove_generation(layer, name)
        raise
    return staged


def switch_generations(store: MemoryStore, mapping: dict[str, str], *, discard_log: bool) -> dict[str, str]:
    """Point CURRENT at ``mapping`` in one atomic rename under the EXCLUSIVE switch lock (and
    every layer's flush lock); returns the mapping it replaced. With ``discard_log`` the records
    in the write-ahead logs (written for the replaced generations) are dropped."""
    gens = store.generations
    with ExitStack() as held:
        if store.wal:  # flush lock before switch lock, as a flush takes them
            for layer in LAYERS:
                held.enter_context(store.layer_log(layer).flush_lock())
        held.enter_context(gens.exclusive("restore"))
        previous = gens.read()
        gens.write(mapping)
        if store.wal and discard_log:  # writes logged before the switch belong to the replaced layers
            for layer in LAYERS:
                store.layer_log(layer).discard_locked()
    return previous
