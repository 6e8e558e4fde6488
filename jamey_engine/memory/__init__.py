"""The memory store: five tantivy layer indexes with a write-ahead log, generations and pruning.

``MemoryStore`` (store.py) is the API. Underneath: ``model`` (records and input checks),
``schema`` (the tantivy schema), ``wal`` (each layer's write-ahead log), ``tier`` (the
in-memory tier and the log's group commit), ``logs`` (this process's logs: replay, tiers and
flushes), ``generations`` (the CURRENT pointer and switch lock), ``writer`` (index commits:
flushes, bulk batches, and every store with the log off), ``prune`` (compaction), ``jsonl``
(import/export) and ``portable`` (snapshots, restores, validation).
"""

from jamey_engine.memory.layers import LAYERS, Layer
from jamey_engine.memory.model import LayerSize, Memory, PruneResult, Sizes
from jamey_engine.memory.store import MemoryStore

__all__ = ["LAYERS", "Layer", "LayerSize", "Memory", "MemoryStore", "PruneResult", "Sizes"]
