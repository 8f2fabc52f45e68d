"""The offline measurement of the token re-rank: MaxSim, the fused score, and its metrics."""

from __future__ import annotations

import math

import pytest
import torch

from dmwan_qdrant.data import ProceduralConfig, generate_benchmark, load_benchmark
from dmwan_qdrant.eval.evaluate import evaluate_split
from dmwan_qdrant.eval.rerank import choose_rerank, mean_maxsim, rerank_decision, rerank_metrics
from dmwan_qdrant.model import create_model
from dmwan_qdrant.search.reranking import fuse


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


def test_rerank_decision_by_hand():
    t = torch.tensor
    # A steady gain: mean 0.02, standard error 0.004.
    on = rerank_decision(t([0.02, 0.03, 0.01, 0.02]), t([0.0, 0.1, 0.0, 0.0]))
    assert on["on"] and on["gain_mAP@200"] == pytest.approx(0.02) and on["queries"] == 4
    assert on["se_mAP@200"] == pytest.approx(float(t([0.02, 0.03, 0.01, 0.02]).std()) / 2)
    # A mean gain inside two standard errors: noise, off.
    assert not rerank_decision(t([0.10, -0.09, 0.02, -0.01]), t([0.0] * 4))["on"]
    # mAP@200 up but P@10 down on average: off.
    assert not rerank_decision(t([0.02, 0.03, 0.01, 0.02]), t([-0.1, 0.0, 0.0, 0.0]))["on"]
    # No change at all, a loss, or one query: off.
    assert not rerank_decision(t([0.0] * 4), t([0.0] * 4))["on"]
    assert not rerank_decision(t([-0.02, -0.03, -0.01, -0.02]), t([0.0] * 4))["on"]
    assert not rerank_decision(t([0.5]), t([0.1]))["on"]
    # The same gain everywhere (standard error 0): on.
    assert rerank_decision(t([0.01] * 3), t([0.0] * 3))["on"]


def test_choose_rerank_on_the_validation_classes(tmp_path):
    root = generate_benchmark(tmp_path / "data", ProceduralConfig(
        n_classes=8, unseen_classes=3, photos_per_class=40, sketches_per_class=4, image_size=32, workers=1))
    model = create_model("tiny", seed=0)
    assert choose_rerank(model, load_benchmark("procedural", root)) is None  # no validation classes
    split = load_benchmark("procedural", root).hold_out_validation(0.4, seed=0)
    choice = choose_rerank(model, split, weight=1.0, prefetch=50)
    measured = rerank_metrics(model, split, betas=(0.0, 1.0), classes="validation", prefetch=50)
    assert choice["weight"] == 1.0 and choice["prefetch"] == 50 and isinstance(choice["on"], bool)
    assert choice["queries"] == len(split.val_sketches)
    for name, beta in (("cosine", 0.0), ("fused", 1.0)):
        for k in ("P@10", "mAP@200"):
            assert choice["validation"][name][k] == pytest.approx(measured[beta][k], abs=1e-6)
    assert choice["gain_mAP@200"] == pytest.approx(measured[1.0]["mAP@200"] - measured[0.0]["mAP@200"], abs=1e-6)
    assert choice["on"] == (choice["gain_mAP@200"] > 2 * choice["se_mAP@200"] and choice["gain_mAP@200"] > 0
                            and choice["gain_P@10"] >= 0)
