"""The token re-rank's settings and its fused score, without torch (the CLI reads them for its
help): the top ``prefetch`` candidates by global cosine are re-ordered by
``(cos + w * maxsim / n_tokens) / (1 + w)``, on the cosine's scale."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

DEFAULT_PREFETCH = 100
"""Candidates the global index hands to the token re-rank."""
RERANK_WEIGHT = 2.0
"""w: the weight of the mean MaxSim against the global cosine in the re-rank's fused score,
chosen on validation classes (BENCHMARKS.md, the ablation's re-rank table: of 0.5, 1, 2 and
MaxSim alone, 2 gave the largest mean gain of validation P@10 and mAP@200)."""
DEFAULT_RERANK = False
"""Whether a sketch search re-ranks when neither the request nor the bundle says: no. On the
objects benchmark's validation classes the fused re-rank raised mAP@200 in all 8 runs and P@10 in
7 of 8, but on the glyph benchmark it lowered validation P@10 (BENCHMARKS.md). So the choice is
made per bundle: a training run with validation classes measures it there and records it in the
card (`dmwan_qdrant.eval.rerank.choose_rerank`), and `bundle_rerank` reads it back."""


def bundle_rerank(model: Any) -> tuple[bool, float]:
    """A model's re-rank default and fusion weight: its bundle card's ``rerank`` choice (made on
    the training run's validation classes), else (`DEFAULT_RERANK`, `RERANK_WEIGHT`)."""
    card = (getattr(model, "metadata", None) or {}).get("card") or {}
    choice = card.get("rerank") if isinstance(card, dict) else None
    if not isinstance(choice, dict):
        return DEFAULT_RERANK, RERANK_WEIGHT
    weight = choice.get("weight", RERANK_WEIGHT)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight >= 0:  # also NaN
        weight = RERANK_WEIGHT
    return bool(choice.get("on", DEFAULT_RERANK)), float(weight)


def resolve_rerank(rerank: bool | None, model: Any) -> tuple[bool, float]:
    """Whether a sketch search re-ranks, and with what weight: ``rerank`` when given, else the
    bundle's choice (`bundle_rerank`)."""
    on, weight = bundle_rerank(model)
    return (on if rerank is None else bool(rerank)), weight


def fuse_hits(cosine: Sequence[Any], maxsim: Sequence[Any], n_tokens: float, weight: float) -> list[Any]:
    """The candidates of ``cosine`` (by global cosine) re-ranked by the fused multi-level score
    ``(cos + weight * maxsim / n_tokens) / (1 + weight)``, best first; ``maxsim`` holds the same
    candidates with their MaxSim sums; ``weight = inf`` is the mean MaxSim alone. Ties keep the
    cosine order."""
    sums = {h.id: h.score for h in maxsim}

    def score(cos: float, mean_maxsim: float) -> float:
        return mean_maxsim if math.isinf(weight) else (cos + weight * mean_maxsim) / (1.0 + weight)

    fused = [(h, score(h.score, sums[h.id] / n_tokens)) for h in cosine if h.id in sums]
    fused.sort(key=lambda pair: -pair[1])  # stable
    return [dataclasses.replace(h, score=score) for h, score in fused]

