"""Scoring a model on a benchmark split: every unseen sketch against every unseen photo."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.datasets import ImageDataset
from ..data.layout import BenchmarkSplit, Sample
from ..model.dmwan import DMWAN, Embeddings
from .metrics import retrieval_metrics


def embed_samples(
    model: DMWAN, samples: Sequence[Sample], domain: str, batch_size: int = 128, num_workers: int = 0
) -> Embeddings:
    """Embed image samples of one domain in batches, decoding in ``num_workers`` loader workers."""
    dataset = ImageDataset(list(samples), model.transform(domain))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    embed = model.embed_sketches if domain == "sketch" else model.embed_photos
    parts = [embed(images) for images, _ in loader]
    if not parts:
        return Embeddings(torch.zeros(0, model.config.embed_dim), torch.zeros(0, 0, model.config.token_dim))
    return Embeddings(torch.cat([p.global_.cpu() for p in parts]), torch.cat([p.tokens.cpu() for p in parts]))


def evaluate_split(
    model: DMWAN,
    split: BenchmarkSplit,
    batch_size: int = 128,
    num_workers: int = 0,
    per_class: bool = False,
    classes: str = "test",
) -> dict:
    """The protocol's metrics of ``model`` on the unseen test classes of ``split`` (or, with
    ``classes="validation"``, on its validation classes: their sketches against their photos).

    Returns `METRICS` (fractions, not x100), the query and gallery sizes, and with ``per_class``
    the mean AP@all of each class's sketches.
    """
    if classes not in ("test", "validation"):
        raise ValueError(f"classes must be 'test' or 'validation', not {classes!r}")
    query, gallery = ((split.test_sketches, split.test_photos) if classes == "test"
                      else (split.val_sketches, split.val_photos))
    names = sorted({s.label for s in gallery} | {s.label for s in query})
    index = {c: i for i, c in enumerate(names)}
    sketches = embed_samples(model, query, "sketch", batch_size, num_workers)
    photos = embed_samples(model, gallery, "photo", batch_size, num_workers)
    q_labels = np.array([index[s.label] for s in query])
    g_labels = np.array([index[s.label] for s in gallery])
    result = retrieval_metrics(sketches.global_, q_labels, photos.global_, g_labels, per_query=per_class)
    result["queries"] = len(q_labels)
    result["gallery"] = len(g_labels)
    if per_class:
        ap = result.pop("ap_per_query")
        result["per_class_ap"] = {c: float(ap[q_labels == i].mean()) for c, i in index.items() if (q_labels == i).any()}
    return result
