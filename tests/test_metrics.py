import numpy as np
import pytest
import torch

from dmwan_qdrant.eval.metrics import METRICS, average_precision, precision_at_k, retrieval_metrics


def voc_interpolated_ap(scores: np.ndarray, relevant: np.ndarray, top: int | None = None) -> float:
    """The published convention written out as the VOC recipe: a precision/recall curve, its
    precision made monotone from the right, summed over the steps where recall moves."""
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order]
    n_relevant = hits.sum()
    if top is not None:
        hits, n_relevant = hits[:top], min(top, n_relevant)
    tp = np.cumsum(hits)
    recall = np.concatenate([[0.0], tp / n_relevant, [1.0]])
    precision = np.concatenate([[0.0], tp / np.arange(1, len(hits) + 1), [0.0]])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    moved = recall[1:] != recall[:-1]
    return float(np.sum((recall[1:] - recall[:-1])[moved] * precision[1:][moved]))


def test_average_precision_hand_made():
    # ranking: rel, not, rel, not, rel -> AP = (1/1 + 2/3 + 3/5) / 3 (no later rank does better)
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    relevant = torch.tensor([[True, False, True, False, True]])
    assert average_precision(scores, relevant).item() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert average_precision(scores, relevant, interpolated=False).item() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # @2: only the first hit counts, divided by min(2, 3) = 2
    assert average_precision(scores, relevant, k=2).item() == pytest.approx(1 / 2)
    assert precision_at_k(scores, relevant, 2).item() == pytest.approx(1 / 2)
    assert precision_at_k(scores, relevant, 5).item() == pytest.approx(3 / 5)


def test_interpolated_ap_takes_the_best_later_precision():
    # not, rel, rel: precision 0, 1/2, 2/3. Plain: (1/2 + 2/3) / 2. Interpolated: the hit at rank
    # 2 takes rank 3's precision 2/3 -> (2/3 + 2/3) / 2.
    scores = torch.tensor([[3.0, 2.0, 1.0]])
    relevant = torch.tensor([[False, True, True]])
    assert average_precision(scores, relevant).item() == pytest.approx(2 / 3)
    assert average_precision(scores, relevant, interpolated=False).item() == pytest.approx((1 / 2 + 2 / 3) / 2)
    # Cut at 3 with 4 relevant (rel at 2, 3, 5, 6): divided by min(3, 4) = 3, and the best
    # precision is taken within the cut only (rank 6's 4/6 is past it).
    scores = torch.arange(6, 0, -1, dtype=torch.float32)[None]
    relevant = torch.tensor([[False, True, True, False, True, True]])
    assert average_precision(scores, relevant, k=3).item() == pytest.approx((2 / 3 + 2 / 3) / 3)
    assert average_precision(scores, relevant, k=3, interpolated=False).item() == pytest.approx((1 / 2 + 2 / 3) / 3)
    # All: precisions at the hits 1/2, 2/3, 3/5, 4/6 -> interpolated 2/3, 2/3, 2/3, 2/3.
    assert average_precision(scores, relevant).item() == pytest.approx(2 / 3)


def test_interpolated_ap_equals_the_voc_recipe_on_random_cases():
    rng = np.random.default_rng(2)
    for top in (None, 5, 20):
        scores = rng.normal(size=(9, 50))
        relevant = rng.random((9, 50)) < 0.25
        relevant[:, 0] = True
        ours = average_precision(torch.tensor(scores), torch.tensor(relevant), k=top).numpy()
        reference = [voc_interpolated_ap(scores[i], relevant[i], top) for i in range(9)]
        np.testing.assert_allclose(ours, reference, rtol=1e-6)
        plain = average_precision(torch.tensor(scores), torch.tensor(relevant), k=top, interpolated=False).numpy()
        assert (plain <= ours + 1e-7).all() and (plain < ours - 1e-4).any()


def test_average_precision_no_relevant_is_zero():
    assert average_precision(torch.rand(1, 5), torch.zeros(1, 5, dtype=torch.bool)).item() == 0.0


def test_plain_map_all_equals_sklearn_on_random_cases():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for _ in range(5):
        scores = rng.normal(size=(7, 60))
        relevant = rng.random((7, 60)) < 0.3
        relevant[:, 0] = True
        ours = average_precision(torch.tensor(scores), torch.tensor(relevant), interpolated=False).numpy()
        theirs = [average_precision_score(relevant[i], scores[i]) for i in range(7)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_retrieval_metrics_perfect_and_chunking():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 8))
    labels = np.repeat(np.arange(3), 150)
    emb = centers[labels] + 0.01 * rng.normal(size=(450, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    m = retrieval_metrics(emb[:30], labels[:30], emb, labels, chunk=7)
    assert m["mAP@all"] == pytest.approx(1.0) and m["mAP@all plain"] == pytest.approx(1.0)
    assert m["P@100"] == pytest.approx(1.0)
    assert m["P@200"] == pytest.approx(150 / 200)
    shuffled = retrieval_metrics(emb[:30], labels[:30], emb, rng.permutation(labels))
    assert shuffled["mAP@all"] < 0.6


def test_retrieval_metrics_reports_both_conventions():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(40, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=40)
    m = retrieval_metrics(emb[:10], labels[:10], emb[10:], labels[10:], chunk=3)
    assert set(m) == set(METRICS)
    assert m["mAP@all plain"] <= m["mAP@all"] and m["mAP@200 plain"] <= m["mAP@200"]
    scores = torch.tensor(emb[:10] @ emb[10:].T, dtype=torch.float32)
    relevant = torch.tensor(labels[:10, None] == labels[None, 10:])
    assert m["mAP@all"] == pytest.approx(float(average_precision(scores, relevant).mean()), abs=1e-6)
