"""Torch datasets: quadruplet invariants, balance, determinism, loader workers and sharding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from dmwan_qdrant.data import ImageDataset, ProceduralConfig, QuadrupletDataset, generate_benchmark, load_benchmark
from dmwan_qdrant.errors import DatasetError


def to_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def augment(image) -> torch.Tensor:
    """A random augmentation drawing from torch's global generator, as torchvision's do."""
    return to_tensor(image) + 0.1 * torch.rand(1)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    cfg = ProceduralConfig(n_classes=7, unseen_classes=2, photos_per_class=4, sketches_per_class=4, image_size=32, workers=1)
    return load_benchmark("procedural", generate_benchmark(root, cfg))


def _quads(split, **kw) -> QuadrupletDataset:
    args = dict(length=64, seed=1)
    args.update(kw)
    return QuadrupletDataset(split.train_photos, split.train_sketches, augment, augment, **args)


def test_quadruplet_invariants(split):
    ds = _quads(split, classes=split.seen_classes)
    assert ds.classes == split.seen_classes and len(ds) == 64
    photo_label = {str(p.path): p.label for p in split.train_photos}
    for i in range(len(ds)):
        label, neg_label, anchor, photo, neg_photo, neg_sketch = ds.draw(i)
        assert split.train_sketches[anchor].label == photo.label == ds.classes[label]
        assert neg_photo.label == split.train_sketches[neg_sketch].label == ds.classes[neg_label]
        assert label != neg_label
        assert photo_label[str(photo.path)] == photo.label
    item = ds[3]
    assert set(item) == {"sketch", "photo", "neg_photo", "neg_sketch", "label", "neg_label", "sketch_index",
                         "photo_index"}
    assert item["sketch"].shape == item["neg_photo"].shape == (3, 32, 32)
    assert (item["label"], item["neg_label"], item["sketch_index"]) == ds.draw(3)[:3]
    assert split.train_photos[item["photo_index"]] == ds.draw(3)[3]  # the key of the photo memory


def test_anchor_classes_are_balanced_whatever_the_class_sizes(split):
    # One class keeps a single sketch: it must still be drawn as often as the others.
    rare = split.seen_classes[0]
    sketches = [s for s in split.train_sketches if s.label != rare] + [s for s in split.train_sketches if s.label == rare][:1]
    ds = QuadrupletDataset(split.train_photos, sketches, augment, augment, length=5000, seed=0)
    counts = Counter(ds.draw(i)[0] for i in range(len(ds)))
    expected = len(ds) / len(ds.classes)
    assert len(counts) == len(ds.classes)
    assert all(abs(c - expected) < 0.15 * expected for c in counts.values()), counts
    negatives = Counter(ds.draw(i)[1] for i in range(len(ds)))
    assert all(abs(c - expected) < 0.15 * expected for c in negatives.values()), negatives


def test_items_depend_only_on_seed_epoch_and_index(split):
    a, b = _quads(split), _quads(split)
    forward = [a[i] for i in range(8)]
    backward = [b[i] for i in reversed(range(8))][::-1]  # access order does not matter
    for x, y in zip(forward, backward):
        assert all(torch.equal(x[k], y[k]) if torch.is_tensor(x[k]) else x[k] == y[k] for k in x)
    state = torch.random.get_rng_state()
    a[0]
    assert torch.equal(state, torch.random.get_rng_state()), "the caller's generator is left alone"
    a.set_epoch(1)
    assert [a.draw(i) for i in range(16)] != [b.draw(i) for i in range(16)]
    assert [_quads(split, seed=2).draw(i) for i in range(16)] != [b.draw(i) for i in range(16)]
    with pytest.raises(IndexError):
        a[len(a)]


def test_loader_workers_and_distributed_shards_see_the_same_items(split):
    ds = _quads(split, length=16)
    plain = next(iter(DataLoader(ds, batch_size=16, num_workers=0)))
    workers = next(iter(DataLoader(ds, batch_size=16, num_workers=2)))
    assert torch.equal(plain["photo"], workers["photo"]) and torch.equal(plain["label"], workers["label"])
    seen: list[int] = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=False)
        batch = next(iter(DataLoader(ds, batch_size=8, sampler=sampler)))
        indices = list(sampler)
        seen += indices
        assert torch.equal(batch["sketch_index"], plain["sketch_index"][indices])
    assert sorted(seen) == list(range(16))


def test_quadruplets_need_two_classes(split):
    one = [s for s in split.train_sketches if s.label == split.seen_classes[0]]
    with pytest.raises(DatasetError, match="two classes"):
        QuadrupletDataset(split.train_photos, one, augment, augment, length=4)


def test_image_dataset(split):
    ds = ImageDataset(split.test_photos, to_tensor)
    assert ds.classes == split.unseen_classes and len(ds) == len(split.test_photos)
    image, label = ds[len(ds) - 1]
    assert image.shape == (3, 32, 32) and ds.classes[label] == split.test_photos[-1].label
    pinned = ImageDataset(split.test_photos, to_tensor, classes=["zzz", *split.unseen_classes])
    assert pinned[0][1] == 1 + split.unseen_classes.index(split.test_photos[0].label)
    with pytest.raises(DatasetError, match="outside the given class list"):
        ImageDataset(split.test_photos, to_tensor, classes=["zzz"])
