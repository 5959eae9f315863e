"""Dense vector indexes (FAISS): exact search for small collections, IVF for large ones.

Both keep our own int64 ids, so chunks can be removed and added without renumbering. IVF rather
than HNSW because HNSW cannot delete. `benchmarks/retrieval.py` measures IVF's recall against
exact search and its latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FLAT, IVF = "flat", "ivf"


@dataclass(frozen=True)
class DenseConfig:
    """When to switch to an approximate index and how to size it."""

    ivf_min_vectors: int = 50_000
    """Collections at least this large use IVF; smaller ones use exact search."""
    nprobe: int = 32
    """IVF cells searched per query (recall against latency; measured in benchmarks/retrieval.py)."""

    def kind_for(self, count: int) -> str:
        """The index kind for a collection of `count` vectors."""
        return IVF if count >= self.ivf_min_vectors else FLAT


def new_dense_index(vectors: np.ndarray, ids: np.ndarray, kind: str, config: DenseConfig | None = None) -> Any:
    """A filled index of `kind` over inner products of normalised vectors."""
    import faiss

    config = config or DenseConfig()
    dimension = vectors.shape[1]
    if kind == FLAT:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    else:
        nlist = max(1, int(4 * math.sqrt(len(vectors))))
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct(id) for arbitrary ids
        index.nprobe = min(config.nprobe, nlist)
    if len(vectors):
        index.add_with_ids(vectors, ids)
    return index


def dense_kind(index: Any) -> str:
    """`flat` or `ivf`: the kind of a FAISS index."""
    import faiss

    return IVF if isinstance(faiss.downcast_index(index), faiss.IndexIVF) else FLAT


def all_vectors(index: Any, ids: np.ndarray) -> np.ndarray:
    """The stored vectors of `ids`, in that order (for re-indexing without re-embedding)."""
    if not len(ids):
        return np.zeros((0, index.d), dtype=np.float32)
    return np.vstack([index.reconstruct(int(i)) for i in ids]).astype(np.float32)
