"""The protocol's metrics measured through a store: rank with Qdrant, score the rankings.

`evaluate_split` scores embeddings in memory. This scores what a user gets: the unseen photos
ingested into a collection, every unseen sketch embedded and searched as `search_sketches` does (the code path
of `dmwan query`), and mAP@all (both conventions) and P@100 computed from the ranked labels Qdrant returned. With the
full gallery retrieved and no re-ranking, both must agree up to ties in the scores.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import torch

from ..data.layout import BenchmarkSplit
from ..errors import DmwanError
from .metrics import average_precision, precision_at_k


def ranking_metrics(query_labels: Sequence[str], ranked_labels: Sequence[Sequence[str]], gallery_counts: dict[str, int]) -> dict[str, float]:
    """mAP@all (interpolated, the published convention), mAP@all plain and P@100 of rankings
    given as label lists, best first.

    ``gallery_counts`` is the number of gallery items of each label. AP is taken over the whole
    gallery, so every ranking must hold all the relevant items (retrieve ``k`` = gallery size).
    """
    if not ranked_labels:
        raise DmwanError("no rankings to score")
    depth = max(len(r) for r in ranked_labels)
    relevant = torch.zeros(len(ranked_labels), depth, dtype=torch.bool)
    for i, (q, ranked) in enumerate(zip(query_labels, ranked_labels)):
        hits = [label == q for label in ranked]
        if sum(hits) != gallery_counts.get(q, 0):
            raise DmwanError(f"ranking {i} holds {sum(hits)} of the {gallery_counts.get(q, 0)} photos of {q!r}: "
                             "retrieve the whole gallery to score mAP@all")
        relevant[i, : len(ranked)] = torch.tensor(hits, dtype=torch.bool)
    scores = -torch.arange(depth, dtype=torch.float32).expand(len(ranked_labels), depth)
    return {"mAP@all": float(average_precision(scores, relevant).mean()),
            "mAP@all plain": float(average_precision(scores, relevant, interpolated=False).mean()),
            "P@100": float(precision_at_k(scores, relevant, 100).mean())}


def evaluate_through_store(
    store: Any, collection: str, model: Any, split: BenchmarkSplit, batch: int = 128
) -> dict[str, Any]:
    """Query every unseen sketch of ``split`` against ``collection`` (filled with its unseen photos).

    Returns ``mAP@all`` (and ``mAP@all plain``), ``P@100`` and ``P@10`` of the full rankings (no re-rank), ``P@10 reranked``
    after the token re-rank of the top 100 (a re-rank only reorders those 100, so P@100 cannot
    move), the number of queries, and the re-ranked top 100 of each query.
    """
    from ..search.core import embed_sketch_files, search_sketch_embeddings

    gallery = store.count(collection)
    counts = Counter(s.label for s in split.test_photos)
    sketches = [str(s.path) for s in split.test_sketches]
    labels = [s.label for s in split.test_sketches]
    ranked, top = [], []
    for start in range(0, len(sketches), batch):
        vectors, tokens = embed_sketch_files(model, sketches[start : start + batch])
        full = search_sketch_embeddings(store, collection, model, vectors, tokens, k=gallery, rerank=False)
        ranked += [[r.label for r in rs] for rs in full]
        top += search_sketch_embeddings(store, collection, model, vectors, tokens, k=min(100, gallery), rerank=True)
    result: dict[str, Any] = ranking_metrics(labels, ranked, dict(counts))
    result["P@10"] = sum(sum(label == q for label in rs[:10]) / 10 for q, rs in zip(labels, ranked)) / len(labels)
    result["P@10 reranked"] = sum(sum(r.label == q for r in rs[:10]) / 10 for q, rs in zip(labels, top)) / len(labels)
    result["queries"] = len(labels)
    result["top"] = top
    return result
