"""The offline measurement of the token re-rank: MaxSim, the fused score, and its metrics."""

from __future__ import annotations

import math

import pytest
import torch

from dmwan_qdrant.data import ProceduralConfig, generate_benchmark, load_benchmark
from dmwan_qdrant.eval.evaluate import evaluate_split
from dmwan_qdrant.eval.rerank import fuse, mean_maxsim, rerank_metrics
from dmwan_qdrant.model import create_model


def test_mean_maxsim_and_fusion_by_hand():
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # one query, two tokens
    docs = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.6, 0.8], [0.0, 1.0]]]])  # two candidates
    # doc 0: best matches 1 and 0 -> 0.5; doc 1: best matches 0.6 and 1 -> 0.8
    assert torch.allclose(mean_maxsim(q, docs), torch.tensor([[0.5, 0.8]]))
    cos, ms = torch.tensor([0.9]), torch.tensor([0.3])
    assert fuse(cos, ms, 0.0).item() == pytest.approx(0.9)
    assert fuse(cos, ms, 1.0).item() == pytest.approx(0.6)  # on the cosine's scale
    assert fuse(cos, ms, math.inf).item() == pytest.approx(0.3)


def test_rerank_metrics_on_a_split(tmp_path):
    root = generate_benchmark(tmp_path / "data", ProceduralConfig(
        n_classes=8, unseen_classes=3, photos_per_class=40, sketches_per_class=4, image_size=32, workers=1))
    split = load_benchmark("procedural", root).hold_out_validation(0.4, seed=0)
    model = create_model("tiny", seed=0)
    test = rerank_metrics(model, split, betas=(0.0, 1.0, math.inf), classes="test", prefetch=100)
    plain = evaluate_split(model, split)
    # beta = 0 is the cosine ranking; a re-rank of the top 100 cannot move P@100.
    assert test[0.0]["P@100"] == pytest.approx(plain["P@100"], abs=1e-6)
    assert test[0.0]["mAP@200"] == pytest.approx(plain["mAP@200"], abs=1e-6)
    assert test[1.0]["P@100"] == pytest.approx(plain["P@100"], abs=1e-6)
    assert test[math.inf]["P@100"] == pytest.approx(plain["P@100"], abs=1e-6)
    val = rerank_metrics(model, split, betas=(0.0,), classes="validation")
    assert set(val) == {0.0} and 0.0 <= val[0.0]["P@10"] <= 1.0
    assert rerank_metrics(model, load_benchmark("procedural", root), classes="validation") == {}
