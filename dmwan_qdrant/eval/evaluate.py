"""Scoring a model on a benchmark split: every unseen sketch against every unseen photo."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class EmbeddedClasses:
    """One class set of a split, embedded: its sketches (the queries) and photos (the gallery),
    each with its labels as indices into ``names``, the sorted class names."""

    names: list[str]
    sketches: Embeddings
    photos: Embeddings
    sketch_labels: np.ndarray
    photo_labels: np.ndarray


def embed_classes(
    model: DMWAN, split: BenchmarkSplit, classes: str = "test", batch_size: int = 128, num_workers: int = 0
) -> EmbeddedClasses:
    """Embed the unseen test classes of ``split`` (or, with ``classes="validation"``, its
    validation classes) once, for `evaluate_split` and the re-rank measurements to share."""
    if classes not in ("test", "validation"):
        raise ValueError(f"classes must be 'test' or 'validation', not {classes!r}")
    query, gallery = ((split.test_sketches, split.test_photos) if classes == "test"
                      else (split.val_sketches, split.val_photos))
    names = sorted({s.label for s in gallery} | {s.label for s in query})
    index = {c: i for i, c in enumerate(names)}
    return EmbeddedClasses(
        names,
        embed_samples(model, query, "sketch", batch_size, num_workers),
        embed_samples(model, gallery, "photo", batch_size, num_workers),
        np.array([index[s.label] for s in query], dtype=np.int64),
        np.array([index[s.label] for s in gallery], dtype=np.int64),
    )


def evaluate_split(
    model: DMWAN,
    split: BenchmarkSplit,
    batch_size: int = 128,
    num_workers: int = 0,
    per_class: bool = False,
    classes: str = "test",
    embedded: EmbeddedClasses | None = None,
) -> dict:
    """The protocol's metrics of ``model`` on the unseen test classes of ``split`` (or, with
    ``classes="validation"``, on its validation classes: their sketches against their photos),
    from ``embedded`` when those classes are already embedded (`embed_classes`).

    Returns `METRICS` (fractions, not x100), the query and gallery sizes, and with ``per_class``
    the mean AP@all of each class's sketches.
    """
    e = embedded if embedded is not None else embed_classes(model, split, classes, batch_size, num_workers)
    result = retrieval_metrics(e.sketches.global_, e.sketch_labels, e.photos.global_, e.photo_labels,
                               per_query=per_class)
    result["queries"] = len(e.sketch_labels)
    result["gallery"] = len(e.photo_labels)
    if per_class:
        ap = result.pop("ap_per_query")
        result["per_class_ap"] = {c: float(ap[e.sketch_labels == i].mean()) for i, c in enumerate(e.names)
                                  if (e.sketch_labels == i).any()}
    return result
