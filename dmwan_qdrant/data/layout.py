"""What a benchmark is on disk once loaded: samples and a seen/unseen class split."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class Sample:
    """One image of a benchmark."""

    path: Path
    label: str
    domain: str  # "photo" | "sketch"


#: Fewest validation classes worth holding out (one class makes every photo relevant), and
#: fewest seen classes that must stay for training.
MIN_VALIDATION_CLASSES = 2
MIN_TRAINING_CLASSES = 2


def validation_class_count(n_seen: int, fraction: float) -> int:
    """How many of ``n_seen`` seen classes a ``fraction`` holds out for validation.

    ``round(fraction * n_seen)``, at least `MIN_VALIDATION_CLASSES` when the fraction is positive,
    and 0 when that would leave fewer than `MIN_TRAINING_CLASSES` classes to train on.
    """
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"the validation fraction must be within 0..1 (exclusive), got {fraction}")
    if fraction == 0.0:
        return 0
    count = max(MIN_VALIDATION_CLASSES, round(fraction * n_seen))
    return count if n_seen - count >= MIN_TRAINING_CLASSES else 0


@dataclass
class BenchmarkSplit:
    """A zero-shot split: training samples of seen classes, test samples of unseen classes.

    Validation classes (`hold_out_validation`) are seen classes taken out of training: a run
    chooses its checkpoint on them, so the unseen test classes are only ever reported.
    """

    name: str
    root: Path
    seen_classes: list[str]
    unseen_classes: list[str]
    train_photos: list[Sample] = field(default_factory=list)
    train_sketches: list[Sample] = field(default_factory=list)
    test_photos: list[Sample] = field(default_factory=list)
    test_sketches: list[Sample] = field(default_factory=list)
    validation_classes: list[str] = field(default_factory=list)
    val_photos: list[Sample] = field(default_factory=list)
    val_sketches: list[Sample] = field(default_factory=list)

    def summary(self) -> str:
        """One line: classes and image counts."""
        val = ""
        if self.validation_classes:
            val = (f", {len(self.validation_classes)} validation classes ({len(self.val_photos)} photos, "
                   f"{len(self.val_sketches)} sketches)")
        return (
            f"{self.name}: {len(self.seen_classes)} seen classes ({len(self.train_photos)} photos, "
            f"{len(self.train_sketches)} sketches){val}, {len(self.unseen_classes)} unseen classes "
            f"({len(self.test_photos)} photos, {len(self.test_sketches)} sketches)"
        )

    def hold_out_validation(self, fraction: float, seed: int = 0) -> "BenchmarkSplit":
        """A split whose seen classes lose `validation_class_count` classes, drawn by ``seed``, to
        validation: their images leave the training lists for ``val_photos``/``val_sketches``.

        Holding out from a split that already has validation classes is an error; a fraction
        that leaves too few classes to train on holds out none.
        """
        if self.validation_classes:
            raise UsageError("this split already holds out validation classes")
        count = validation_class_count(len(self.seen_classes), fraction)
        if count == 0:
            return self
        return self.hold_out(random.Random(f"validation/{seed}").sample(sorted(self.seen_classes), count))

    def hold_out(self, classes: Sequence[str]) -> "BenchmarkSplit":
        """A split whose seen ``classes`` become its validation classes (a folder's own list,
        ``zeroshot/validation_classes.txt``); classes it does not train on are ignored.

        Raises:
            UsageError: the split already holds out validation classes, or the list would
                leave fewer than two classes to train on.
        """
        if self.validation_classes:
            raise UsageError("this split already holds out validation classes")
        held = set(classes) & set(self.seen_classes)
        if len(self.seen_classes) - len(held) < 2:
            raise UsageError(f"holding out {len(held)} validation classes leaves fewer than 2 of "
                             f"{len(self.seen_classes)} to train on")
        return BenchmarkSplit(
            self.name, self.root, [c for c in self.seen_classes if c not in held], list(self.unseen_classes),
            [s for s in self.train_photos if s.label not in held], [s for s in self.train_sketches if s.label not in held],
            list(self.test_photos), list(self.test_sketches), sorted(held),
            [s for s in self.train_photos if s.label in held], [s for s in self.train_sketches if s.label in held],
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
            list(self.validation_classes), cap(self.val_photos), cap(self.val_sketches),
        )
