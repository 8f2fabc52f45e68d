"""What a benchmark is on disk once loaded: samples and a seen/unseen class split."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class Sample:
    """One image of a benchmark."""

    path: Path
    label: str
    domain: str  # "photo" | "sketch"


@dataclass
class BenchmarkSplit:
    """A zero-shot split: training samples of seen classes, test samples of unseen classes."""

    name: str
    root: Path
    seen_classes: list[str]
    unseen_classes: list[str]
    train_photos: list[Sample] = field(default_factory=list)
    train_sketches: list[Sample] = field(default_factory=list)
    test_photos: list[Sample] = field(default_factory=list)
    test_sketches: list[Sample] = field(default_factory=list)

    def summary(self) -> str:
        """One line: classes and image counts."""
        return (
            f"{self.name}: {len(self.seen_classes)} seen classes ({len(self.train_photos)} photos, "
            f"{len(self.train_sketches)} sketches), {len(self.unseen_classes)} unseen classes "
            f"({len(self.test_photos)} photos, {len(self.test_sketches)} sketches)"
        )

    def limit(self, max_per_class: int, seed: int = 0) -> "BenchmarkSplit":
        """A smaller split with at most ``max_per_class`` images per class and domain, for fast runs.

        The images kept are drawn by ``seed``, independently per class and domain, so capping
        the test set does not depend on the training set.
        """
        if max_per_class < 1:
            raise UsageError(f"max_per_class must be at least 1, got {max_per_class}")

        def cap(samples: list[Sample]) -> list[Sample]:
            by_class: dict[str, list[Sample]] = {}
            for s in samples:
                by_class.setdefault(s.label, []).append(s)
            out: list[Sample] = []
            for label, items in by_class.items():  # keeps the split's class order
                if len(items) > max_per_class:
                    rng = random.Random(f"{seed}/{items[0].domain}/{label}")
                    keep = set(rng.sample(range(len(items)), max_per_class))
                    items = [s for i, s in enumerate(items) if i in keep]
                out += items
            return out

        return BenchmarkSplit(
            self.name, self.root, list(self.seen_classes), list(self.unseen_classes),
            cap(self.train_photos), cap(self.train_sketches), cap(self.test_photos), cap(self.test_sketches),
        )
