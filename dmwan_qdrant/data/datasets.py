"""Torch datasets: image lists for embedding and evaluation, class-balanced quadruplets for training."""

from __future__ import annotations

import random
from typing import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DatasetError
from ..imageio import load_image
from .layout import Sample

#: A preprocessing function: PIL RGB image in, tensor out.
Transform = Callable[[Image.Image], torch.Tensor]


def _class_list(labels: set[str], classes: Sequence[str] | None) -> list[str]:
    if classes is None:
        return sorted(labels)
    unknown = sorted(labels - set(classes))
    if unknown:
        raise DatasetError(f"samples of classes outside the given class list: {', '.join(unknown[:5])}")
    return list(classes)


class ImageDataset(Dataset):
    """Images of one domain; items are ``(tensor, class index into self.classes)``.

    Args:
        samples: the images.
        transform: preprocessing of the decoded RGB image.
        classes: the class order of the indices; by default the sorted labels of ``samples``.
    """

    def __init__(self, samples: Sequence[Sample], transform: Transform, classes: Sequence[str] | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.classes = _class_list({s.label for s in self.samples}, classes)
        self._index = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        s = self.samples[i]
        return self.transform(load_image(s.path)), self._index[s.label]


class QuadrupletDataset(Dataset):
    """Quadruplets for the weighted quadruplet loss: anchor sketch, positive photo (same class),
    negative photo and negative sketch (one other class, the same for both).

    Class balanced: the anchor class is drawn uniformly over classes, whatever their sizes. Item
    ``i`` depends only on (seed, epoch, i), including the random augmentation of its transforms,
    so a run is reproducible with any number of loader workers and with a ``DistributedSampler``
    sharding the indices.

    Items are dicts: ``sketch``, ``photo``, ``neg_photo``, ``neg_sketch`` (tensors), ``label``,
    ``neg_label`` (indices into ``self.classes``), ``sketch_index`` and ``photo_index`` (the
    anchor's index in ``sketches``, the positive's in ``photos``: the keys of the per-sample
    weight memories).

    Args:
        photos, sketches: training samples (seen classes).
        photo_transform, sketch_transform: preprocessing per domain.
        length: items per epoch.
        seed: the sampling seed.
        classes: the class order of the labels; by default the sorted labels with both photos
            and sketches. Pass the split's ``seen_classes`` to pin it.
    """

    def __init__(
        self,
        photos: Sequence[Sample],
        sketches: Sequence[Sample],
        photo_transform: Transform,
        sketch_transform: Transform,
        length: int,
        seed: int = 0,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.sketches = list(sketches)
        both = {s.label for s in self.sketches} & {p.label for p in photos}
        self.classes = sorted(both) if classes is None else list(classes)
        if length < 1:
            raise DatasetError(f"a quadruplet epoch needs at least one item, got length={length}")
        index = {c: i for i, c in enumerate(self.classes)}
        self.photos_by_class: list[list[Sample]] = [[] for _ in self.classes]
        self.sketch_ids_by_class: list[list[int]] = [[] for _ in self.classes]
        for p in photos:
            if p.label in index:
                self.photos_by_class[index[p.label]].append(p)
        for i, s in enumerate(self.sketches):
            if s.label in index:
                self.sketch_ids_by_class[index[s.label]].append(i)
        # Only classes with both domains can be anchors or negatives.
        self._usable = [i for i in range(len(self.classes)) if self.photos_by_class[i] and self.sketch_ids_by_class[i]]
        if len(self._usable) < 2:
            raise DatasetError("quadruplets need at least two classes with both photos and sketches")
        self._photo_index = {s.path: i for i, s in enumerate(photos)}
        self.photo_transform, self.sketch_transform = photo_transform, sketch_transform
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the quadruplets of ``epoch`` (call it before each epoch, like a sampler's)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def draw(self, i: int) -> tuple[int, int, int, Sample, Sample, int]:
        """The sampling decision of item ``i`` without decoding images.

        Returns (label, neg_label, anchor sketch index, positive photo, negative photo,
        negative sketch index).
        """
        rng = random.Random(f"{self.seed}/{self.epoch}/{i}")
        usable = self._usable
        label = usable[rng.randrange(len(usable))]
        neg_label = usable[(usable.index(label) + 1 + rng.randrange(len(usable) - 1)) % len(usable)]
        anchor = rng.choice(self.sketch_ids_by_class[label])
        photo = rng.choice(self.photos_by_class[label])
        neg_photo = rng.choice(self.photos_by_class[neg_label])
        neg_sketch = rng.choice(self.sketch_ids_by_class[neg_label])
        return label, neg_label, anchor, photo, neg_photo, neg_sketch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        label, neg_label, anchor, photo, neg_photo, neg_sketch = self.draw(i)
        aug_seed = random.Random(f"{self.seed}/{self.epoch}/{i}/augment").getrandbits(63)
        # Transforms draw from torch's global generator: seed it per item for reproducibility,
        # inside fork_rng so the caller's generator (model init, dropout) is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(aug_seed)
            return {
                "sketch": self.sketch_transform(load_image(self.sketches[anchor].path)),
                "photo": self.photo_transform(load_image(photo.path)),
                "neg_photo": self.photo_transform(load_image(neg_photo.path)),
                "neg_sketch": self.sketch_transform(load_image(self.sketches[neg_sketch].path)),
                "label": label,
                "neg_label": neg_label,
                "sketch_index": anchor,
                "photo_index": self._photo_index[photo.path],
            }
