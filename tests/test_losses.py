import pytest
import torch
import torch.nn.functional as F

from dmwan_qdrant.model.losses import weighted_quadruplet_loss


def _emb(b, d, seed):
    return F.normalize(torch.randn(b, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_reduces_to_plain_triplet():
    s, p, pn, sn = (_emb(8, 16, i) for i in range(4))
    d = lambda a, b: 1 - (a * b).sum(-1)  # noqa: E731
    plain = F.relu(d(s, p) - d(s, pn) + 0.3).mean()
    assert torch.allclose(weighted_quadruplet_loss(s, p, pn, None, None, margin_photo=0.3), plain)
    assert torch.allclose(weighted_quadruplet_loss(s, p, pn, sn, None, margin_photo=0.3, sketch_term_weight=0), plain)
    # the same as torch's own triplet loss with the cosine distance
    torch_triplet = F.triplet_margin_with_distance_loss(s, p, pn, distance_function=d, margin=0.3)
    assert torch.allclose(weighted_quadruplet_loss(s, p, pn, None, margin_photo=0.3), torch_triplet)


def test_uniform_weights_give_unweighted_quadruplet():
    s, p, pn, sn = (_emb(8, 16, i) for i in range(4))
    unweighted = weighted_quadruplet_loss(s, p, pn, sn, None)
    assert torch.allclose(weighted_quadruplet_loss(s, p, pn, sn, torch.ones(8)), unweighted)
    assert torch.allclose(weighted_quadruplet_loss(s, p, pn, sn, torch.full((8,), 3.0)), unweighted)


def test_weights_change_the_loss_but_get_no_gradient():
    s, p, pn, sn = (_emb(8, 16, i) for i in range(4))
    w = torch.linspace(0.2, 2.0, 8, requires_grad=True)
    s = s.clone().requires_grad_(True)
    loss = weighted_quadruplet_loss(s, p, pn, sn, w)
    loss.backward()
    assert w.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert not torch.allclose(loss.detach(), weighted_quadruplet_loss(s.detach(), p, pn, sn, None))


def test_one_sided_weighting_only_lowers_pairs_below_the_mean():
    from dmwan_qdrant.model import get_preset
    from dmwan_qdrant.model.weighting import AlignmentWeighting

    scores = torch.tensor([0.9, 0.8, 0.85, 0.1, 0.88, 0.87])
    out = {}
    for one_sided in (False, True):
        weighting = AlignmentWeighting(get_preset("tiny").with_overrides(
            {"weight_one_sided": one_sided, "weight_warmup_steps": 0, "weight_tolerance": 0.0}))
        weighting.train()
        for _ in range(50):  # let the running statistics settle
            w = weighting(scores)
        out[one_sided] = w
    assert out[True].mean().item() == pytest.approx(1.0) and out[False].mean().item() == pytest.approx(1.0)
    above = torch.tensor([True, True, True, False, True, True])
    # softmax weighting spreads the well-aligned pairs apart; one-sided keeps them equal
    assert out[False][above].std() > 0.05
    assert torch.allclose(out[True][above], out[True][above][0].expand(5))
    assert out[True][3] < 0.5 * out[True][0]


def test_a_tolerance_leaves_the_near_misses_of_the_mean_at_full_weight():
    # Standardised scores (batch statistics settle at mean 0.75, sd about 0.3): the 0.1 pair is
    # about 2 sd below, the 0.6 pair about half a sd below.
    scores = torch.tensor([0.9, 0.8, 0.85, 0.1, 0.88, 0.87, 0.6, 0.95])
    out = {}
    for tolerance in (0.0, 1.0):
        weighting = _weighting(weight_one_sided=True, weight_tolerance=tolerance, weight_standardise="batch")
        for _ in range(50):
            w = weighting(scores)
        out[tolerance] = w
    # Without a tolerance the near miss loses weight; with one sd of tolerance it keeps full
    # weight, and only the outlier is weighed down.
    assert out[0.0][6] < out[0.0][0] - 0.05
    assert out[1.0][6] == pytest.approx(out[1.0][0]) and out[1.0][3] < 0.7 * out[1.0][0]
    assert out[1.0].mean().item() == pytest.approx(1.0)


def _weighting(**overrides):
    from dmwan_qdrant.model import get_preset
    from dmwan_qdrant.model.weighting import AlignmentWeighting

    w = AlignmentWeighting(get_preset("tiny").with_overrides({"weight_warmup_steps": 0, **overrides}))
    w.train()
    return w


def test_class_standardised_weighting_does_not_mistake_a_hard_class_for_bad_samples():
    # Class 1 is hard: all its pairs score low. Sample 5 (class 0) is the one bad sample.
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    scores = torch.tensor([0.9, 0.92, 0.88, 0.91, 0.89, 0.5, 0.3, 0.32, 0.28, 0.31, 0.29, 0.3])
    out = {}
    for mode in ("batch", "class"):
        weighting = _weighting(weight_standardise=mode, weight_one_sided=True, weight_tolerance=0.0)
        weighting.resize_memory(0, 0, classes=2)
        for _ in range(30):
            w = weighting(scores, labels=labels)
        out[mode] = w
    # Against the batch, the whole hard class loses weight; against its class, only the bad sample.
    assert out["batch"][6:].max() < out["batch"][5]
    assert out["class"][5] == out["class"].min() and out["class"][5] < 0.5 * out["class"][6:].min()


def test_photo_memory_weighs_a_pair_by_its_worse_sample():
    weighting = _weighting(weight_memory="both", weight_one_sided=True, weight_refresh="step", weight_tolerance=0.0)
    weighting.resize_memory(4, 4, classes=1)
    ids = torch.arange(4)
    sketch_scores = torch.tensor([0.9, 0.9, 0.9, 0.9])
    photo_scores = torch.tensor([0.9, 0.9, 0.2, 0.9])  # photo 2 is bad, every sketch is fine
    for _ in range(20):
        w = weighting(sketch_scores, ids, torch.zeros(4, dtype=torch.long), ids, photo_scores)
    assert w[2] < 0.5 * w[0] and torch.allclose(w[[0, 1, 3]], w[0].expand(3))
    assert torch.isfinite(weighting.photo_memory).all() and weighting.photo_memory[2] < weighting.photo_memory[0]
    state = weighting.training_state()
    again = _weighting(weight_memory="both")
    again.resize_memory(4, 4, classes=1)
    again.load_training_state(state)
    assert torch.equal(again.photo_memory, weighting.photo_memory) and torch.equal(again.memory, weighting.memory)
    again.load_training_state(state["memory"])  # a checkpoint from before photo memories: the bare tensor
    assert torch.equal(again.memory, weighting.memory)
