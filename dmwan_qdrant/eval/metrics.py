"""Retrieval metrics of the ZS-SBIR protocol: mAP@all, mAP@K and P@K, vectorised.

Two conventions of average precision (AP) are computed on the same ranking:

- **Interpolated AP** (the headline ``mAP@all`` / ``mAP@200``): the convention of the published
  tables (SAKE's evaluation code, reused by ZSE-SBIR and the work built on it). It is VOC-style:
  the precision at each rank is replaced by the highest precision at that rank or any later one
  (within the cut), then averaged over the relevant items. mAP@K cuts the ranking at K and
  divides by min(K, number relevant).
- **Plain AP** (``mAP@all plain`` / ``mAP@200 plain``): the mean, over the relevant items, of
  the precision at each one's rank, with the same cut and divisor. It never reads higher than
  the interpolated AP of the same ranking.

P@K: relevant items in the top K, divided by K.

Ties are broken by gallery order (a stable sort), so a figure is a pure function of the scores.
The reference code sorts with NumPy's default (unstable) sort, so under tied scores its figures
can differ from ours, and from run to run of its own, in the last digits. A query with no
relevant item scores 0 (the reference code returns NaN for it; no benchmark has one).
"""

from __future__ import annotations

import numpy as np
import torch

#: The metric names of `retrieval_metrics`, headline first.
METRICS = ("mAP@all", "P@100", "mAP@200", "P@200", "mAP@all plain", "mAP@200 plain")


def _ranked_relevance(scores: torch.Tensor, relevant: torch.Tensor, k: int | None) -> torch.Tensor:
    """Relevance (Q, K) of each query's top-K gallery items, by descending score."""
    k = scores.shape[1] if k is None else min(k, scores.shape[1])
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(relevant, 1, order).float()


def _precision_curve(rel: torch.Tensor) -> torch.Tensor:
    """Precision at every rank (Q, K) of a ranked relevance matrix."""
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float32, device=rel.device)
    return torch.cumsum(rel, dim=1) / ranks


def _ap_from_ranked(rel: torch.Tensor, relevant: torch.Tensor, k: int | None, interpolated: bool) -> torch.Tensor:
    precision = _precision_curve(rel)
    if interpolated:
        # The highest precision at this rank or any later one: a running max from the right.
        precision = torch.flip(torch.cummax(torch.flip(precision, dims=[1]), dim=1).values, dims=[1])
    n_relevant = relevant.sum(dim=1).float()
    denom = n_relevant if k is None else n_relevant.clamp(max=k)
    total = (precision * rel).sum(dim=1)
    return torch.where(denom > 0, total / denom.clamp_min(1), torch.zeros_like(denom))


def average_precision(
    scores: torch.Tensor, relevant: torch.Tensor, k: int | None = None, interpolated: bool = True
) -> torch.Tensor:
    """AP@K per query (Q,) from scores (Q, G) and a boolean relevance matrix (Q, G); K=None: all.

    ``interpolated`` (the default) is the published tables' convention; False gives plain AP.
    Queries with no relevant item score 0.
    """
    return _ap_from_ranked(_ranked_relevance(scores, relevant, k), relevant, k, interpolated)


def precision_at_k(scores: torch.Tensor, relevant: torch.Tensor, k: int) -> torch.Tensor:
    """P@K per query (Q,): relevant items among the top K, divided by K."""
    return _ranked_relevance(scores, relevant, k).sum(dim=1) / k


def ranked_metrics(scores: torch.Tensor, relevant: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of `METRICS` per query (Q,), from one sort of ``scores`` (Q, G)."""
    rel = _ranked_relevance(scores, relevant, None)
    top = rel[:, :200]
    return {
        "mAP@all": _ap_from_ranked(rel, relevant, None, True),
        "P@100": rel[:, :100].sum(dim=1) / 100,
        "mAP@200": _ap_from_ranked(top, relevant, 200, True),
        "P@200": top.sum(dim=1) / 200,
        "mAP@all plain": _ap_from_ranked(rel, relevant, None, False),
        "mAP@200 plain": _ap_from_ranked(top, relevant, 200, False),
    }


def retrieval_metrics(
    query_embeddings: torch.Tensor | np.ndarray,
    query_labels: torch.Tensor | np.ndarray,
    gallery_embeddings: torch.Tensor | np.ndarray,
    gallery_labels: torch.Tensor | np.ndarray,
    chunk: int = 512,
    per_query: bool = False,
) -> dict:
    """The protocol's metrics of cosine retrieval, as fractions (not x100): `METRICS`.

    Embeddings must be L2-normalised. Queries are scored in chunks, so a large benchmark fits in
    memory. With ``per_query`` the (interpolated) AP@all of each query is returned too, for
    per-class analysis.
    """
    q = torch.as_tensor(query_embeddings, dtype=torch.float32)
    g = torch.as_tensor(gallery_embeddings, dtype=torch.float32)
    ql = torch.as_tensor(query_labels)
    gl = torch.as_tensor(gallery_labels)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in METRICS}
    for start in range(0, q.shape[0], chunk):
        scores = q[start : start + chunk] @ g.t()
        relevant = ql[start : start + chunk, None] == gl[None, :]
        for name, values in ranked_metrics(scores, relevant).items():
            parts[name].append(values)
    cat = {name: torch.cat(v) for name, v in parts.items()}
    result: dict = {name: float(v.mean()) for name, v in cat.items()}
    if per_query:
        result["ap_per_query"] = cat["mAP@all"].numpy()
    return result


def mean_average_precision(
    scores: torch.Tensor, relevant: torch.Tensor, k: int | None = None, interpolated: bool = True
) -> float:
    """mAP@K over queries (K=None: mAP@all), interpolated unless told otherwise."""
    return float(average_precision(scores, relevant, k, interpolated).mean())
