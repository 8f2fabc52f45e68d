"""Losses of DMWAN: the weighted quadruplet loss, the semantic loss and the token alignment term."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cos of paired L2-normalised rows: (B, D), (B, D) -> (B,)."""
    return 1.0 - (a * b).sum(dim=-1)


def weighted_quadruplet_loss(
    sketch: torch.Tensor,
    photo: torch.Tensor,
    neg_photo: torch.Tensor,
    neg_sketch: torch.Tensor | None,
    weights: torch.Tensor | None = None,
    margin_photo: float = 0.2,
    margin_sketch: float = 0.2,
    sketch_term_weight: float = 1.0,
    sketch_term_anchor: str = "sketch",
) -> torch.Tensor:
    """L = sum_i w_i ([d(s,p) - d(s,p-) + m1]+ + lambda [d(s,p) - d(a,s-) + m2]+) / sum_i w_i.

    ``a`` is the anchor sketch s (``sketch_term_anchor="sketch"``, the literal form) or the
    positive photo p (``"photo"``: both terms then compare cross-domain distances). With
    ``neg_sketch=None`` (or lambda = 0) it is the plain triplet loss; with ``weights=None`` the
    unweighted mean. Inputs are L2-normalised embeddings (B, D).
    """
    d_pos = cosine_distance(sketch, photo)
    per_pair = F.relu(d_pos - cosine_distance(sketch, neg_photo) + margin_photo)
    if neg_sketch is not None and sketch_term_weight != 0:
        anchor = photo if sketch_term_anchor == "photo" else sketch
        per_pair = per_pair + sketch_term_weight * F.relu(d_pos - cosine_distance(anchor, neg_sketch) + margin_sketch)
    if weights is None:
        return per_pair.mean()
    weights = weights.detach()
    return (weights * per_pair).sum() / weights.sum().clamp_min(1e-12)


def semantic_loss(
    embeddings: torch.Tensor, anchors: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """Cross-entropy over classes of cos(embedding, class text anchor) / tau.

    ``embeddings`` (B, D) and ``anchors`` (C, D) are L2-normalised; ``labels`` (B,) index anchors.
    """
    logits = embeddings @ anchors.t() / temperature
    return F.cross_entropy(logits, labels)


def token_triplet_loss(positive_score: torch.Tensor, negative_score: torch.Tensor, margin: float) -> torch.Tensor:
    """Margin ranking of token-level similarities: positives above negatives by ``margin``."""
    return F.relu(negative_score - positive_score + margin).mean()
