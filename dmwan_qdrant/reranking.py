"""The token re-rank's settings and its fused score, without torch (the CLI reads them for its
help): the top ``prefetch`` candidates by global cosine are re-ordered by
``(cos + w * maxsim / n_tokens) / (1 + w)``, on the cosine's scale."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

DEFAULT_PREFETCH = 100
"""Candidates the global index hands to the token re-rank."""
RERANK_WEIGHT = 2.0
"""w: the weight of the mean MaxSim against the global cosine in the re-rank's fused score,
chosen on validation classes (BENCHMARKS.md, the ablation's re-rank table: of 0.5, 1, 2 and
MaxSim alone, 2 gave the largest mean gain of validation P@10 and mAP@200)."""
DEFAULT_RERANK = False
"""Sketch searches do not re-rank unless asked: on the objects benchmark's validation classes the
fused re-rank raised mAP@200 in all 8 runs and P@10 in 7 of 8, but on the glyph benchmark it
lowered validation P@10 (BENCHMARKS.md). Measure it on your own validation classes
(`dmwan_qdrant.eval.rerank.rerank_metrics`) and turn it on where it helps."""

def fuse_hits(cosine: Sequence[Any], maxsim: Sequence[Any], n_tokens: float, weight: float) -> list[Any]:
    """The candidates of ``cosine`` (by global cosine) re-ranked by the fused multi-level score
    ``(cos + weight * maxsim / n_tokens) / (1 + weight)``, best first; ``maxsim`` holds the same
    candidates with their MaxSim sums. Ties keep the cosine order."""
    sums = {h.id: h.score for h in maxsim}
    fused = [(h, (h.score + weight * sums[h.id] / n_tokens) / (1.0 + weight)) for h in cosine if h.id in sums]
    fused.sort(key=lambda pair: -pair[1])  # stable
    return [dataclasses.replace(h, score=score) for h, score in fused]

