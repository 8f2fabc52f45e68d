"""What a benchmark is on disk once loaded: samples and a seen/unseen class split."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path


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
        """A smaller split with at most ``max_per_class`` images per class and domain (seeded)."""
        rng = random.Random(seed)

        def cap(samples: list[Sample]) -> list[Sample]:
            by_class: dict[str, list[Sample]] = {}
            for s in samples:
                by_class.setdefault(s.label, []).append(s)
            out: list[Sample] = []
            for label in sorted(by_class):
                items = by_class[label]
                out += sorted(rng.sample(items, min(max_per_class, len(items))), key=lambda s: str(s.path))
            return out

        return BenchmarkSplit(
            self.name, self.root, list(self.seen_classes), list(self.unseen_classes),
            cap(self.train_photos), cap(self.train_sketches), cap(self.test_photos), cap(self.test_sketches),
        )
