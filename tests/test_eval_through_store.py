"""Metrics measured through Qdrant agree with the offline evaluation of the same model."""

from __future__ import annotations

import pytest

from dmwan_qdrant.data import ProceduralConfig, generate_benchmark, load_benchmark
from dmwan_qdrant.errors import DmwanError
from dmwan_qdrant.eval.evaluate import evaluate_split
from dmwan_qdrant.eval.through_store import evaluate_through_store, ranking_metrics
from dmwan_qdrant.ingest import ingest
from dmwan_qdrant.model import create_model
from dmwan_qdrant.store import open_store


def test_ranking_metrics_of_known_rankings():
    counts = {"a": 2, "b": 1}
    perfect = ranking_metrics(["a", "b"], [["a", "a", "b"], ["b", "a", "a"]], counts)
    assert perfect["mAP@all"] == pytest.approx(1.0)
    # relevant at ranks 2 and 3 -> plain AP (1/2 + 2/3) / 2, interpolated (2/3 + 2/3) / 2;
    # "b" at rank 3 -> 1/3 either way
    mixed = ranking_metrics(["a", "b"], [["b", "a", "a"], ["a", "a", "b"]], counts)
    assert mixed["mAP@all plain"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 3) / 2)
    assert mixed["mAP@all"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert mixed["P@100"] == pytest.approx((2 / 100 + 1 / 100) / 2)  # P@K divides by K, as offline


def test_ranking_metrics_refuses_truncated_rankings():
    with pytest.raises(DmwanError, match="whole gallery"):
        ranking_metrics(["a"], [["a", "b"]], {"a": 2, "b": 1})


def test_through_store_agrees_with_offline(tmp_path):
    root = generate_benchmark(tmp_path / "data", ProceduralConfig(
        n_classes=6, unseen_classes=3, photos_per_class=10, sketches_per_class=6, image_size=48, workers=1))
    split = load_benchmark("procedural", root)
    model = create_model("tiny", seed=0)
    with open_store(path=tmp_path / "store") as store:
        folders = sorted({str(s.path.parent) for s in split.test_photos})
        report = ingest(folders, store, "unseen", model, label_from_folder=True, num_workers=0)
        assert report.added == len(split.test_photos)
        through = evaluate_through_store(store, "unseen", model, split, batch=7)
    offline = evaluate_split(model, split)
    assert through["queries"] == len(split.test_sketches)
    assert through["mAP@all"] == pytest.approx(offline["mAP@all"], abs=1e-4)
    assert through["mAP@all plain"] == pytest.approx(offline["mAP@all plain"], abs=1e-4)
    assert through["P@100"] == pytest.approx(offline["P@100"], abs=1e-4)
    assert all(len(t) == len(split.test_photos) for t in through["top"])  # gallery of 30 < 100
    assert 0.0 <= through["P@10 reranked"] <= 1.0 and 0.0 <= through["P@10"] <= 1.0
