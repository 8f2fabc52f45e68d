"""Shared fixtures: seeded tiny models and quiet, fast defaults."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory):
    """A tiny CLIP in open_clip's checkpoint format: what `--pretrained FILE` reads, standing in
    for the CLIP weights a user downloads."""
    from open_clip.model import CLIP

    from dmwan_qdrant.model import get_preset

    torch.manual_seed(7)
    clip = CLIP(**get_preset("tiny").clip_config)
    path = tmp_path_factory.mktemp("weights") / "tiny_clip.pt"
    torch.save(clip.state_dict(), path)
    return path


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
