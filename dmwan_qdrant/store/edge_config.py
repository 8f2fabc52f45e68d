"""The shard configuration of an embedded collection, and atomic small-file writes."""

from __future__ import annotations

import os
from pathlib import Path

import qdrant_edge as qe

from dmwan_qdrant.store.base import GLOBAL, TOKENS


def edge_config(dim: int, token_dim: int) -> qe.EdgeConfig:
    """The shard configuration of a collection.

    ``tokens`` gets ``m=0`` (no HNSW graph): it only re-ranks prefetched candidates, so a graph
    would cost build time and memory for nothing. ``indexing_threshold=1`` (KB) makes
    `EdgeStore.optimize` index every segment; qdrant-edge never optimizes on its own, so writes
    stay cheap until then, and segments under ``full_scan_threshold`` (KB) are scanned exactly.
    """
    tokens = qe.EdgeVectorParams(
        size=token_dim,
        distance=qe.Distance.Cosine,
        multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
        hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
    )
    return qe.EdgeConfig(
        vectors={
            GLOBAL: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            TOKENS: tokens,
        },
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
    )


def write_atomic(file: Path, text: str) -> None:
    """Write ``text`` to ``file`` so that readers see the old or the new content, never half."""
    tmp = file.with_name(file.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, file)
