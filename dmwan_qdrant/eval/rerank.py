"""Does the local level help at query time? Re-ranking measured offline, on a class set.

Retrieval takes the top ``prefetch`` photos by the cosine of global embeddings; a re-rank then
reorders them by a score that adds the local level: the mean MaxSim of the sketch's tokens over
the photo's tokens (Qdrant's multivector MAX_SIM divided by the query's token count). The fused
score ``(cos + beta * maxsim) / (1 + beta)`` stays on the cosine's scale; ``beta = inf`` is the
MaxSim re-rank alone. It is `dmwan_qdrant.search.reranking.fuse`, the formula the search uses.
Photos past the prefetch keep their cosine order behind the re-ranked ones, so P@K for
K <= prefetch is what a user sees.

`choose_rerank` decides, on a run's validation classes, whether the bundle it exports re-ranks
by default (its card's ``rerank``; `dmwan_qdrant.search.reranking.bundle_rerank` reads it).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..data.layout import BenchmarkSplit
from ..search.reranking import DEFAULT_PREFETCH, RERANK_WEIGHT, fuse
from .evaluate import EmbeddedClasses, embed_classes
from .metrics import average_precision, precision_at_k

#: How many standard errors (over validation queries) a re-rank's mAP@200 gain must clear for a
#: bundle to re-rank by default: about a 2% chance of switching on a re-rank that does not help
#: (one-sided, if queries were independent).
RERANK_MIN_SE = 2.0


def mean_maxsim(query_tokens: torch.Tensor, doc_tokens: torch.Tensor) -> torch.Tensor:
    """Mean over query tokens of the best cosine among a document's tokens: (Q, n, d) queries
    against (Q, C, m, d) candidates per query -> (Q, C)."""
    sim = torch.einsum("qnd,qcmd->qcnm", query_tokens, doc_tokens)
    return sim.max(dim=3).values.mean(dim=2)


def rerank_per_query(
    model,
    split: BenchmarkSplit,
    betas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, math.inf),
    classes: str = "validation",
    prefetch: int = DEFAULT_PREFETCH,
    batch_size: int = 256,
    chunk: int = 64,
    embedded: EmbeddedClasses | None = None,
) -> dict[float, dict[str, torch.Tensor]]:
    """`rerank_metrics` per query: each ``beta``'s P@10, P@100 and mAP@200 as (Q,) tensors, the
    queries in the split's order (so two betas can be compared query by query); from
    ``embedded`` when those classes are already embedded (`embed_classes`)."""
    query, gallery = ((split.val_sketches, split.val_photos) if classes == "validation"
                      else (split.test_sketches, split.test_photos))
    if not query or not gallery:
        return {}
    e = embedded if embedded is not None else embed_classes(model, split, classes, batch_size)
    sketches, photos = e.sketches, e.photos
    q_labels, g_labels = torch.from_numpy(e.sketch_labels), torch.from_numpy(e.photo_labels)
    depth = min(prefetch, len(gallery))
    parts: dict[float, dict[str, list[torch.Tensor]]] = {b: {"P@10": [], "P@100": [], "mAP@200": []} for b in betas}
    for start in range(0, len(query), chunk):
        cos = sketches.global_[start : start + chunk] @ photos.global_.t()
        relevant = q_labels[start : start + chunk, None] == g_labels[None, :]
        top_cos, top = cos.topk(depth, dim=1)
        maxsim = mean_maxsim(sketches.tokens[start : start + chunk], photos.tokens[top])
        for beta in betas:
            # Re-ranked candidates ahead of the rest (which keep their cosine order).
            scores = cos - 10.0
            scores.scatter_(1, top, fuse(top_cos, maxsim, beta) + 10.0)
            parts[beta]["P@10"].append(precision_at_k(scores, relevant, 10))
            parts[beta]["P@100"].append(precision_at_k(scores, relevant, 100))
            parts[beta]["mAP@200"].append(average_precision(scores, relevant, 200))
    return {b: {k: torch.cat(v) for k, v in m.items()} for b, m in parts.items()}


def rerank_metrics(
    model,
    split: BenchmarkSplit,
    betas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, math.inf),
    classes: str = "validation",
    prefetch: int = DEFAULT_PREFETCH,
    batch_size: int = 256,
    chunk: int = 64,
) -> dict[float, dict[str, float]]:
    """P@10, P@100 and mAP@200 (interpolated) of each ``beta``'s re-rank of the top ``prefetch``
    by cosine, on the ``classes`` ("validation" or "test") of ``split``; ``beta = 0`` is the
    plain cosine ranking."""
    per = rerank_per_query(model, split, betas, classes, prefetch, batch_size, chunk)
    return {b: {k: float(v.mean()) for k, v in m.items()} for b, m in per.items()}


def rerank_decision(gain_map: torch.Tensor, gain_p10: torch.Tensor, min_se: float = RERANK_MIN_SE) -> dict[str, Any]:
    """Whether a re-rank helps, from its paired per-query gains over the cosine ranking on
    validation queries: on when the mean mAP@200 gain is positive and more than ``min_se``
    standard errors (over queries), and the mean P@10 gain is not negative. Returns ``on`` and
    the figures it was decided on (gains x1, not x100)."""
    n = int(gain_map.numel())
    mean = float(gain_map.mean()) if n else 0.0
    se = float(gain_map.std() / math.sqrt(n)) if n > 1 else 0.0  # one query decides nothing: off below
    p10 = float(gain_p10.mean()) if n else 0.0
    on = n > 1 and mean > 0.0 and mean > min_se * se and p10 >= 0.0
    return {"on": bool(on), "gain_mAP@200": mean, "se_mAP@200": se, "gain_P@10": p10, "queries": n}


def choose_rerank(
    model,
    split: BenchmarkSplit,
    weight: float = RERANK_WEIGHT,
    prefetch: int = DEFAULT_PREFETCH,
    batch_size: int = 256,
    embedded: EmbeddedClasses | None = None,
) -> dict[str, Any] | None:
    """A bundle's re-rank setting, chosen on the validation classes of ``split`` (None without
    any; ``embedded``: those classes already embedded): `rerank_decision` on the fused score of
    ``weight`` against the cosine ranking. What a card records under ``rerank``: ``on``,
    ``weight``, ``prefetch``, the decision's figures and the validation P@10 / mAP@200 of both
    rankings."""
    per = rerank_per_query(model, split, (0.0, weight), "validation", prefetch, batch_size, embedded=embedded)
    if not per:
        return None
    plain, fused = per[0.0], per[weight]
    decision = rerank_decision(fused["mAP@200"] - plain["mAP@200"], fused["P@10"] - plain["P@10"])
    figures = {name: {k: float(m[k].mean()) for k in ("P@10", "mAP@200")} for name, m in
               (("cosine", plain), ("fused", fused))}
    rule = (f"validation mAP@200 gain > {RERANK_MIN_SE:g} standard errors over "
            f"{decision['queries']} queries, P@10 not lower")
    return {**decision, "weight": weight, "prefetch": prefetch, "validation": figures, "chosen_by": rule}
