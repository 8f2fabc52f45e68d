"""The AUC with which the weighting's memories rank the benchmark's bad samples below clean ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dmwan_qdrant.data.layout import BenchmarkSplit, Sample
from dmwan_qdrant.eval.quality import low_quality_auc, memory_auc, weighting_quality


def test_auc_hand_made_and_against_all_pairs():
    assert low_quality_auc([0.1, 0.2], [0.5, 0.9]) == 1.0
    assert low_quality_auc([0.5, 0.9], [0.1, 0.2]) == 0.0
    assert low_quality_auc([0.5], [0.5]) == 0.5  # a tie counts half
    assert low_quality_auc([0.1, 0.6], [0.5, 0.5]) == pytest.approx(0.5)
    assert low_quality_auc([], [1.0]) is None
    rng = np.random.default_rng(0)
    low, clean = rng.integers(0, 6, 40).astype(float), rng.integers(2, 9, 70).astype(float)  # many ties
    pairs = (low[:, None] < clean[None, :]).mean() + 0.5 * (low[:, None] == clean[None, :]).mean()
    assert low_quality_auc(low, clean) == pytest.approx(pairs)


def _split(tmp_path, n: int = 6) -> BenchmarkSplit:
    sketches = [Sample(tmp_path / "sketch" / "a" / f"{i:05d}.png", "a", "sketch") for i in range(n)]
    photos = [Sample(tmp_path / "photo" / "a" / f"{i:05d}.png", "a", "photo") for i in range(n)]
    (tmp_path / "manifest.json").write_text(json.dumps({"low_quality": ["sketch/a/00000.png", "sketch/a/00001.png",
                                                                        "photo/a/00005.png"]}))
    return BenchmarkSplit("procedural", tmp_path, ["a"], ["b"], photos, sketches)


def test_memory_auc_reads_the_manifest_and_skips_unscored_samples(tmp_path):
    split = _split(tmp_path)
    memory = torch.tensor([-1.0, float("nan"), 0.5, 0.2, 0.9, 1.0])  # sketch 1 (bad) never scored
    assert memory_auc(memory, split.train_sketches, tmp_path) == 1.0
    assert memory_auc(-memory, split.train_sketches, tmp_path) == 0.0
    assert memory_auc(memory[:3], split.train_sketches, tmp_path) is None  # not this split's memory
    assert memory_auc(memory, split.train_sketches, tmp_path / "elsewhere") is None  # no manifest


def test_weighting_quality_names_what_the_model_keeps(tmp_path):
    split = _split(tmp_path)

    class Weighting:
        memory = torch.tensor([-1.0, -2.0, 0.5, 0.2, 0.9, 1.0])
        photo_memory = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, -5.0])

    class Model:
        weighting = Weighting()

    assert weighting_quality(Model(), split) == {"lq_auc_sketch": 1.0, "lq_auc_photo": 1.0}
    del Weighting.photo_memory
    assert weighting_quality(Model(), split) == {"lq_auc_sketch": 1.0}
