"""Does the alignment weighting find the bad samples? AUCs against a benchmark's ground truth.

A generated benchmark's manifest lists its deliberately low-quality samples (over-abstract or
wrong sketches, cluttered photos). The weighting keeps a running alignment score per training
sketch and per training photo (the memory its weights are made from). The AUC here is the
probability that a low-quality sample's score is below a clean one's (ties count half): 1.0 =
every bad sample scored below every clean one, 0.5 = no separation.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def low_quality_auc(low: Sequence[float], clean: Sequence[float]) -> float | None:
    """P(score of a low-quality sample < score of a clean one), ties counting half; None when
    either group is empty."""
    lo, cl = np.asarray(low, dtype=np.float64), np.asarray(clean, dtype=np.float64)
    if lo.size == 0 or cl.size == 0:
        return None
    # Rank form of the Mann-Whitney statistic: O((n + m) log(n + m)), ties by midranks.
    scores = np.concatenate([lo, cl])
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    for end in range(1, len(scores) + 1):
        if end == len(scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # midrank, 1-based
            start = end
    clean_rank_sum = ranks[len(lo):].sum()
    return float((clean_rank_sum - len(cl) * (len(cl) + 1) / 2) / (len(lo) * len(cl)))


def _low_quality_paths(root: str) -> frozenset[str] | None:
    try:
        stamp = (Path(root) / "manifest.json").stat().st_mtime_ns
    except OSError:
        return None
    return _read_low_quality(root, stamp)


@lru_cache(maxsize=8)
def _read_low_quality(root: str, stamp: int) -> frozenset[str] | None:
    """The manifest's low-quality list (cached per file version: ``stamp`` is its mtime)."""
    try:
        manifest = json.loads((Path(root) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    low = manifest.get("low_quality")
    return frozenset(low) if isinstance(low, list) else None


def memory_auc(memory: Any, samples: Sequence[Any], root: str | Path) -> float | None:
    """AUC of a per-sample memory (indexed like ``samples``; NaN = never scored) against the
    low-quality list of the manifest under ``root``; None without a manifest or a memory."""
    low_set = _low_quality_paths(str(root))
    if low_set is None or memory is None:
        return None
    values = np.asarray(memory.detach().cpu().float() if hasattr(memory, "detach") else memory, dtype=np.float64)
    if values.shape[0] != len(samples):
        return None
    root = Path(root)
    low, clean = [], []
    for value, sample in zip(values, samples):
        if value != value:  # never drawn
            continue
        try:
            rel = str(Path(sample.path).relative_to(root))
        except ValueError:
            continue
        (low if rel in low_set else clean).append(value)
    return low_quality_auc(low, clean)


def weighting_quality(model: Any, split: Any) -> dict[str, float]:
    """``lq_auc_sketch`` and ``lq_auc_photo``: how the model's weighting memories rank the
    training split's low-quality sketches and photos below clean ones (keys absent when the
    benchmark has no ground truth or the weighting keeps no such memory)."""
    weighting = getattr(model, "weighting", None)
    out: dict[str, float] = {}
    for key, memory, samples in (("lq_auc_sketch", getattr(weighting, "memory", None), split.train_sketches),
                                 ("lq_auc_photo", getattr(weighting, "photo_memory", None), split.train_photos)):
        auc = memory_auc(memory, samples, split.root)
        if auc is not None:
            out[key] = auc
    return out


def class_standardise(scores: Any, labels: Any) -> Any:
    """Scores (N,) minus their class's mean, over the pooled within-class standard deviation."""
    import torch

    out = torch.empty_like(scores)
    for c in labels.unique():
        mask = labels == c
        out[mask] = scores[mask] - scores[mask].mean()
    return out / out.std().clamp_min(1e-6)


def sample_quality(model: Any, sketches: Sequence[Any], photos: Sequence[Any], classes: Sequence[str],
                   batch_size: int = 256) -> tuple[Any, Any]:
    """Per-sample alignment of a training set with the current model: (sketch scores, photo
    scores), each class-standardised.

    A sample's score is its cosine with its class's centroid in the other domain (a sketch
    against the mean of its class's photos, a photo against the mean of its sketches), plus
    ``text_coef`` times its agreement with its class's text anchor when the model has anchors.
    Partners are averaged out, so a sketch is not blamed for a cluttered photo nor the reverse.
    """
    import torch
    import torch.nn.functional as F

    from .evaluate import embed_samples

    index = {c: i for i, c in enumerate(classes)}
    s = embed_samples(model, sketches, "sketch", batch_size).global_
    p = embed_samples(model, photos, "photo", batch_size).global_
    ls = torch.tensor([index[x.label] for x in sketches])
    lp = torch.tensor([index[x.label] for x in photos])

    def centroids(emb: Any, labels: Any) -> Any:
        sums = torch.zeros(len(classes), emb.shape[1]).index_add_(0, labels, emb)
        return F.normalize(sums, dim=-1)

    s_score = (s * centroids(p, lp)[ls]).sum(-1)
    p_score = (p * centroids(s, ls)[lp]).sum(-1)
    anchors = getattr(model, "class_anchors", None)
    if anchors is not None and anchors.numel() and anchors.shape[0] == len(classes):
        anchors = anchors.cpu().float()
        s_score = s_score + model.config.text_coef * (s * anchors[ls]).sum(-1)
        p_score = p_score + model.config.text_coef * (p * anchors[lp]).sum(-1)
    return class_standardise(s_score, ls), class_standardise(p_score, lp)
