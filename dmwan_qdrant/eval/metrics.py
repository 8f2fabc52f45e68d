"""Retrieval metrics of the ZS-SBIR protocol: mAP@all, mAP@K and P@K, vectorised.

AP of one query: the mean, over the relevant items in the ranking, of the precision at each one's
rank. mAP@K cuts the ranking at K and divides by min(K, number relevant). P@K: relevant items in
the top K, divided by K. Ties are broken by gallery order (a stable sort).
"""

from __future__ import annotations

import numpy as np
import torch


def _ranked_relevance(scores: torch.Tensor, relevant: torch.Tensor, k: int | None) -> torch.Tensor:
    """Relevance (Q, K) of each query's top-K gallery items, by descending score."""
    k = scores.shape[1] if k is None else min(k, scores.shape[1])
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(relevant, 1, order).float()


def average_precision(scores: torch.Tensor, relevant: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """AP@K per query (Q,) from scores (Q, G) and a boolean relevance matrix (Q, G); K=None: all.

    Queries with no relevant item score 0.
    """
    rel = _ranked_relevance(scores, relevant, k)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float32, device=rel.device)
    precision_at_hit = torch.cumsum(rel, dim=1) / ranks * rel
    n_relevant = relevant.sum(dim=1).float()
    denom = n_relevant if k is None else n_relevant.clamp(max=k)
    return torch.where(denom > 0, precision_at_hit.sum(dim=1) / denom.clamp_min(1), torch.zeros_like(denom))


def precision_at_k(scores: torch.Tensor, relevant: torch.Tensor, k: int) -> torch.Tensor:
    """P@K per query (Q,): relevant items among the top K, divided by K."""
    return _ranked_relevance(scores, relevant, k).sum(dim=1) / k


def retrieval_metrics(
    query_embeddings: torch.Tensor | np.ndarray,
    query_labels: torch.Tensor | np.ndarray,
    gallery_embeddings: torch.Tensor | np.ndarray,
    gallery_labels: torch.Tensor | np.ndarray,
    chunk: int = 512,
    per_query: bool = False,
) -> dict:
    """The protocol's metrics of cosine retrieval: mAP@all, P@100, mAP@200, P@200 (x1, not x100).

    Embeddings must be L2-normalised. Queries are scored in chunks, so a large benchmark fits in
    memory. With ``per_query`` the AP@all of each query is returned too (for per-class analysis).
    """
    q = torch.as_tensor(query_embeddings, dtype=torch.float32)
    g = torch.as_tensor(gallery_embeddings, dtype=torch.float32)
    ql = torch.as_tensor(query_labels)
    gl = torch.as_tensor(gallery_labels)
    parts: dict[str, list[torch.Tensor]] = {"mAP@all": [], "P@100": [], "mAP@200": [], "P@200": []}
    for start in range(0, q.shape[0], chunk):
        scores = q[start : start + chunk] @ g.t()
        relevant = ql[start : start + chunk, None] == gl[None, :]
        parts["mAP@all"].append(average_precision(scores, relevant))
        parts["P@100"].append(precision_at_k(scores, relevant, 100))
        parts["mAP@200"].append(average_precision(scores, relevant, 200))
        parts["P@200"].append(precision_at_k(scores, relevant, 200))
    cat = {name: torch.cat(v) for name, v in parts.items()}
    result: dict = {name: float(v.mean()) for name, v in cat.items()}
    if per_query:
        result["ap_per_query"] = cat["mAP@all"].numpy()
    return result


def mean_average_precision(scores: torch.Tensor, relevant: torch.Tensor, k: int | None = None) -> float:
    """mAP@K over queries (K=None: mAP@all)."""
    return float(average_precision(scores, relevant, k).mean())
