"""The shard configuration of an embedded collection."""

from __future__ import annotations

import qdrant_edge as qe

from dmwan_qdrant.store.records import GLOBAL, INDEXED_FIELDS, TOKENS
from dmwan_qdrant.store.index import INT8_QUANTILE, IndexSettings

FULL_SCAN_KB = 10_000
"""Segments (and filtered subsets) smaller than this many KB of vectors are scanned exactly."""


def edge_config(dim: int, token_dim: int, index: IndexSettings) -> qe.EdgeConfig:
    """The shard configuration of a collection with the settings ``index``.

    ``tokens`` gets ``m=0`` (no HNSW graph): it only re-ranks prefetched candidates, so a graph
    would cost build time and memory for nothing. ``indexing_threshold=1`` (KB) makes
    `EdgeStore.optimize` index every segment; qdrant-edge never optimizes on its own, so writes
    stay cheap until then. Quantized tokens exist only in optimized segments: fresh ones score
    the re-rank with the originals.
    """
    tokens = qe.EdgeVectorParams(
        size=token_dim,
        distance=qe.Distance.Cosine,
        multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
        hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=index.ef_construct, full_scan_threshold=FULL_SCAN_KB),
        **_token_storage(index.tokens),
    )
    return qe.EdgeConfig(
        vectors={
            GLOBAL: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            TOKENS: tokens,
        },
        hnsw_config=qe.HnswIndexConfig(
            m=index.hnsw_m, ef_construct=index.ef_construct, full_scan_threshold=FULL_SCAN_KB
        ),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
    )


def _token_storage(tokens: str) -> dict[str, object]:
    """`EdgeVectorParams` arguments for a token storage of `dmwan_qdrant.store.index`."""
    if tokens == "float32":
        return {}
    if tokens == "float16":
        return {"datatype": qe.VectorStorageDatatype.Float16}
    return {  # int8: the quantized copy pinned in memory scores; originals half-size, on disk
        "datatype": qe.VectorStorageDatatype.Float16,
        "memory": qe.Memory.Cold,
        "quantization_config": qe.ScalarQuantizationConfig(
            qe.ScalarType.Int8, quantile=INT8_QUANTILE, memory=qe.Memory.Pinned
        ),
    }



def field_index_params() -> qe.KeywordIndexParams:
    """The keyword index of each of `INDEXED_FIELDS`: memory-mapped on disk (``Cold``), read as
    filters need it. Held in memory instead, the engine rebuilds each index's hash map when it
    opens a shard: at a million points that took 3.5 of the 4.3-5.1 s of the open and 518 MiB
    of anonymous memory (``path`` and ``content_hash`` are unique per point), against 0.9 s with
    the indexes on disk, with the same filtered search times (BENCHMARKS.md, "Scale")."""
    return qe.KeywordIndexParams(memory=qe.Memory.Cold)


def index_on_disk(info: qe.PayloadIndexInfo) -> bool:
    """Whether a shard's payload index is the on-disk one `field_index_params` makes."""
    params = info.params
    return params is not None and getattr(params, "memory", None) == qe.Memory.Cold


def move_indexes_to_disk(shard: qe.EdgeShard) -> None:
    """Make the payload indexes of a shard made before `field_index_params` the on-disk ones."""
    schema = shard.info().payload_schema
    for field in INDEXED_FIELDS:
        if field in schema and not index_on_disk(schema[field]):
            shard.update(qe.UpdateOperation.delete_field_index(field))
            shard.update(qe.UpdateOperation.create_field_index(field, field_index_params()))
