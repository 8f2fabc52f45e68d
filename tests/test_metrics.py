import numpy as np
import pytest
import torch

from dmwan_qdrant.eval.metrics import average_precision, precision_at_k, retrieval_metrics


def test_average_precision_hand_made():
    # ranking: rel, not, rel, not, rel -> AP = (1/1 + 2/3 + 3/5) / 3
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    relevant = torch.tensor([[True, False, True, False, True]])
    assert average_precision(scores, relevant).item() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # @2: only the first hit counts, divided by min(2, 3) = 2
    assert average_precision(scores, relevant, k=2).item() == pytest.approx(1 / 2)
    assert precision_at_k(scores, relevant, 2).item() == pytest.approx(1 / 2)
    assert precision_at_k(scores, relevant, 5).item() == pytest.approx(3 / 5)


def test_average_precision_no_relevant_is_zero():
    assert average_precision(torch.rand(1, 5), torch.zeros(1, 5, dtype=torch.bool)).item() == 0.0


def test_map_all_equals_sklearn_on_random_cases():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for _ in range(5):
        scores = rng.normal(size=(7, 60))
        relevant = rng.random((7, 60)) < 0.3
        relevant[:, 0] = True
        ours = average_precision(torch.tensor(scores), torch.tensor(relevant)).numpy()
        theirs = [average_precision_score(relevant[i], scores[i]) for i in range(7)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_retrieval_metrics_perfect_and_chunking():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 8))
    labels = np.repeat(np.arange(3), 150)
    emb = centers[labels] + 0.01 * rng.normal(size=(450, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    m = retrieval_metrics(emb[:30], labels[:30], emb, labels, chunk=7)
    assert m["mAP@all"] == pytest.approx(1.0)
    assert m["P@100"] == pytest.approx(1.0)
    assert m["P@200"] == pytest.approx(150 / 200)
    shuffled = retrieval_metrics(emb[:30], labels[:30], emb, rng.permutation(labels))
    assert shuffled["mAP@all"] < 0.6
