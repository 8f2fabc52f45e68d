"""Torch datasets: plain image lists for evaluation and class-balanced quadruplets for training."""

from __future__ import annotations

import random
from typing import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..imageio import load_image
from .layout import Sample

Transform = Callable[[Image.Image], torch.Tensor]


class ImageDataset(Dataset):
    """Images of one domain: items are (tensor, class index into ``classes``)."""

    def __init__(self, samples: Sequence[Sample], transform: Transform) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.classes = sorted({s.label for s in self.samples})
        self._index = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        s = self.samples[i]
        return self.transform(load_image(s.path)), self._index[s.label]


class QuadrupletDataset(Dataset):
    """Quadruplets (anchor sketch, positive photo, negative photo, negative sketch).

    The anchor class is drawn uniformly over classes (class balanced, whatever the class sizes);
    both negatives come from one other class. Item ``i`` depends only on (seed, epoch, i), so runs
    are reproducible with any number of loader workers or distributed shards.
    """

    def __init__(
        self,
        photos: Sequence[Sample],
        sketches: Sequence[Sample],
        photo_transform: Transform,
        sketch_transform: Transform,
        length: int,
        seed: int = 0,
    ) -> None:
        self.sketches = list(sketches)
        self.classes = sorted({s.label for s in self.sketches} & {p.label for p in photos})
        if len(self.classes) < 2:
            raise ValueError("quadruplets need at least two classes with both photos and sketches")
        index = {c: i for i, c in enumerate(self.classes)}
        self.photo_by_class: list[list[Sample]] = [[] for _ in self.classes]
        self.sketch_ids_by_class: list[list[int]] = [[] for _ in self.classes]
        for p in photos:
            if p.label in index:
                self.photo_by_class[index[p.label]].append(p)
        for i, s in enumerate(self.sketches):
            if s.label in index:
                self.sketch_ids_by_class[index[s.label]].append(i)
        self.photo_transform, self.sketch_transform = photo_transform, sketch_transform
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a new set of quadruplets for ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        rng = random.Random(f"{self.seed}/{self.epoch}/{i}")
        n = len(self.classes)
        label = rng.randrange(n)
        neg_label = (label + 1 + rng.randrange(n - 1)) % n
        anchor = rng.choice(self.sketch_ids_by_class[label])
        neg_sketch = rng.choice(self.sketch_ids_by_class[neg_label])
        # Augmentation draws from torch's global generator: seed it per item for reproducibility.
        torch.manual_seed(rng.getrandbits(63))
        return {
            "sketch": self.sketch_transform(load_image(self.sketches[anchor].path)),
            "photo": self.photo_transform(load_image(rng.choice(self.photo_by_class[label]).path)),
            "neg_photo": self.photo_transform(load_image(rng.choice(self.photo_by_class[neg_label]).path)),
            "neg_sketch": self.sketch_transform(load_image(self.sketches[neg_sketch].path)),
            "label": label,
            "neg_label": neg_label,
            "sketch_index": anchor,
        }
