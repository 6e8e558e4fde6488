"""The memory store: five tantivy layer indexes with group commit, generations and pruning.

``MemoryStore`` (store.py) is the API. Underneath: ``model`` (records and input checks),
``schema`` (the tantivy schema), ``generations`` (the CURRENT pointer and switch lock),
``writer`` (group commit), ``prune`` (compaction), ``jsonl`` (import/export) and
``portable`` (snapshots, restores, validation).
"""

from jamey_engine.memory.layers import LAYERS, Layer
from jamey_engine.memory.model import LayerSize, Memory, PruneResult, Sizes
from jamey_engine.memory.store import MemoryStore

__all__ = ["LAYERS", "Layer", "LayerSize", "Memory", "MemoryStore", "PruneResult", "Sizes"]
