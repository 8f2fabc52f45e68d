"""The token re-rank's settings and its fused score, without torch (the CLI reads them for its
help): the top ``prefetch`` candidates by global cosine are re-ordered by
``(cos + w * maxsim / n_tokens) / (1 + w)``, on the cosine's scale. `fuse` is that formula, for
the search and for the offline evaluation of the re-rank alike."""

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


def fuse(cosine: Any, mean_maxsim: Any, weight: float) -> Any:
    """The fused multi-level score ``(cosine + weight * mean_maxsim) / (1 + weight)``, on the
    cosine's scale; ``weight = inf`` is the mean MaxSim alone. Plain arithmetic, so it takes
    floats, numpy arrays or torch tensors alike: the search fuses one hit at a time
    (`fuse_hits`), the offline evaluation whole score matrices (`dmwan_qdrant.eval.rerank`)."""
    if math.isinf(weight):
        return mean_maxsim
    return (cosine + weight * mean_maxsim) / (1.0 + weight)


def fuse_hits(cosine: Sequence[Any], maxsim: Sequence[Any], n_tokens: float, weight: float) -> list[Any]:
    """The candidates of ``cosine`` (by global cosine) re-ranked by the fused multi-level score
    (`fuse`), best first; ``maxsim`` holds the same candidates with their MaxSim sums over
    ``n_tokens`` query tokens. Ties keep the cosine order."""
    sums = {h.id: h.score for h in maxsim}
    fused = [(h, fuse(h.score, sums[h.id] / n_tokens, weight)) for h in cosine if h.id in sums]
    fused.sort(key=lambda pair: -pair[1])  # stable
    return [dataclasses.replace(h, score=score) for h, score in fused]
