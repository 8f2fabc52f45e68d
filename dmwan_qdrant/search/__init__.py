"""Searching a collection: every query kind, the token re-rank, and the results.

One module per concept:

- `core`: the search by sketches (files, images or their embeddings) and by text;
- `similar`: more like this photo, or this stored point;
- `filters`: the ``--filter`` syntax, and naming a filter key no point holds;
- `reranking`: the re-rank's settings and its fused score (also what the evaluation measures);
- `results`: `Result`, one retrieved photo;
- `queries`: query images from files, folders, standard input or URLs;
- `request`: `SearchRequest`, one query of any kind, and `run_search`, which `dmwan query` and
  the server both call.

The names below load on first use, so that a client of a running server (which builds only
`Result`) or the CLI's help (which reads the re-rank's defaults) loads neither numpy nor the store.
"""

from __future__ import annotations

from dmwan_qdrant.lazy import lazy_attributes

_HOMES = {
    "check_collection": "core",
    "embed_sketch_files": "core",
    "embed_sketch_images": "core",
    "search_sketch_embeddings": "core",
    "search_sketch_images": "core",
    "search_sketches": "core",
    "search_text": "core",
    "embed_photo_images": "similar",
    "search_like": "similar",
    "search_photos": "similar",
    "FILTER_SYNTAX": "filters",
    "INTEGER_FIELDS": "filters",
    "check_filter_keys": "filters",
    "parse_filters": "filters",
    "DEFAULT_PREFETCH": "reranking",
    "DEFAULT_RERANK": "reranking",
    "RERANK_WEIGHT": "reranking",
    "bundle_rerank": "reranking",
    "fuse": "reranking",
    "fuse_hits": "reranking",
    "resolve_rerank": "reranking",
    "Result": "results",
    "QuerySource": "queries",
    "read_query_sources": "queries",
    "MODES": "request",
    "SearchRequest": "request",
    "run_search": "request",
}

__all__ = sorted(_HOMES)


__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
