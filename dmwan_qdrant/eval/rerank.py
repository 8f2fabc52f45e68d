"""Does the local level help at query time? Re-ranking measured offline, on a class set.

Retrieval takes the top ``prefetch`` photos by the cosine of global embeddings; a re-rank then
reorders them by a score that adds the local level: the mean MaxSim of the sketch's tokens over
the photo's tokens (Qdrant's multivector MAX_SIM divided by the query's token count). The fused
score ``(cos + beta * maxsim) / (1 + beta)`` stays on the cosine's scale; ``beta = inf`` is the
MaxSim re-rank alone. Photos past the prefetch keep their cosine order behind the re-ranked ones,
so P@K for K <= prefetch is what a user sees.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..data.layout import BenchmarkSplit
from .evaluate import embed_samples
from .metrics import average_precision, precision_at_k


def mean_maxsim(query_tokens: torch.Tensor, doc_tokens: torch.Tensor) -> torch.Tensor:
    """Mean over query tokens of the best cosine among a document's tokens: (Q, n, d) queries
    against (Q, C, m, d) candidates per query -> (Q, C)."""
    sim = torch.einsum("qnd,qcmd->qcnm", query_tokens, doc_tokens)
    return sim.max(dim=3).values.mean(dim=2)


def fuse(cosine: torch.Tensor, maxsim: torch.Tensor, beta: float) -> torch.Tensor:
    """The fused multi-level score on the cosine's scale (``beta = inf``: MaxSim alone)."""
    if math.isinf(beta):
        return maxsim
    return (cosine + beta * maxsim) / (1.0 + beta)


def rerank_metrics(
    model,
    split: BenchmarkSplit,
    betas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, math.inf),
    classes: str = "validation",
    prefetch: int = 100,
    batch_size: int = 256,
    chunk: int = 64,
) -> dict[float, dict[str, float]]:
    """P@10, P@100 and mAP@200 (interpolated) of each ``beta``'s re-rank of the top ``prefetch``
    by cosine, on the ``classes`` ("validation" or "test") of ``split``; ``beta = 0`` is the
    plain cosine ranking."""
    query, gallery = ((split.val_sketches, split.val_photos) if classes == "validation"
                      else (split.test_sketches, split.test_photos))
    if not query or not gallery:
        return {}
    sketches = embed_samples(model, query, "sketch", batch_size)
    photos = embed_samples(model, gallery, "photo", batch_size)
    names = {c: i for i, c in enumerate(sorted({s.label for s in gallery} | {s.label for s in query}))}
    q_labels = torch.tensor([names[s.label] for s in query])
    g_labels = torch.tensor([names[s.label] for s in gallery])
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
    return {b: {k: float(torch.cat(v).mean()) for k, v in m.items()} for b, m in parts.items()}
