"""Shared fixtures: seeded tiny models and quiet, fast defaults."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
torch.set_num_threads(2)


@pytest.fixture
def tiny_model():
    from dmwan_qdrant.model import create_model

    model = create_model("tiny", seed=0)
    model.set_class_names(["cat", "dog", "car", "house"])
    return model


def _random_batch(b: int = 4, size: int | None = None, seed: int = 0) -> dict:
    from dmwan_qdrant.model import get_preset

    size = size or get_preset("tiny").image_size
    g = torch.Generator().manual_seed(seed)
    img = lambda: torch.randn(b, 3, size, size, generator=g)  # noqa: E731
    labels = torch.arange(b) % 4
    return {
        "sketch": img(),
        "photo": img(),
        "neg_photo": img(),
        "neg_sketch": img(),
        "labels": labels,
        "neg_labels": (labels + 1) % 4,
        "sample_ids": torch.arange(b),
    }


@pytest.fixture
def random_batch():
    """A function building a seeded random quadruplet batch for the tiny model."""
    return _random_batch
