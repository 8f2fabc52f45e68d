"""Loading a ZS-SBIR benchmark from disk with its standard zero-shot split, behind one function.

Each benchmark is read from the folder layouts users actually download (``LAYOUTS``). The unseen
classes of the standard splits ship with this package in ``splits/``, as used by the SAKE,
Doodle2Search and ZSE-SBIR code bases:

- Sketchy Extended split 1: 25 random unseen classes (SAKE); split 2: the 21 classes not in
  ImageNet-1k (Yelamarthi et al. 2018);
- TU-Berlin Extended: 30 unseen classes;
- QuickDraw Extended: 30 unseen classes of 110 (Dey et al. 2019).

Seen classes are all the other classes found on disk.

``folder`` is the user's own material: ``photo/<class>/`` and ``sketch/<class>/``, with the unseen
classes listed in ``zeroshot/unseen_classes.txt`` or drawn by seed (``unseen=N``). The procedural
benchmark is one producer of that layout.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import DatasetError
from ..imageio import is_image_path
from .layout import BenchmarkSplit, Sample


@dataclass(frozen=True)
class Layout:
    """Where a benchmark keeps its class folders, relative to its root.

    ``photos``: alternatives, tried in order; the first with any existing folder is used, and all
    its existing folders are merged (Sketchy's 12,500 photos plus the 60,502 extended ones).
    ``sketches``: folders tried in order; the first that exists is used.
    """

    photos: tuple[tuple[str, ...], ...]
    sketches: tuple[str, ...]

    def describe(self) -> str:
        photos = ", ".join(" + ".join(alt) for alt in self.photos)
        return f"expected class folders under one of: {photos} (photos) and one of: {', '.join(self.sketches)} (sketches)"


#: Accepted layouts per benchmark.
LAYOUTS: dict[str, Layout] = {
    "sketchy": Layout(
        photos=(("photo/tx_000000000000", "EXTEND_image_sketchy"),
                ("256x256/photo/tx_000000000000", "256x256/EXTEND_image_sketchy", "EXTEND_image_sketchy"),
                ("photo",)),
        sketches=("sketch/tx_000000000000", "256x256/sketch/tx_000000000000", "sketch"),
    ),
    "tuberlin": Layout(
        photos=(("ImageResized_ready",), ("ImageResized",), ("images",), ("photo",)),
        sketches=("png_ready", "png", "sketches", "sketch"),
    ),
    "quickdraw": Layout(
        photos=(("images",), ("QuickDraw_images_final",), ("EXTEND_image_quickdraw",), ("photo",)),
        sketches=("sketch", "sketches", "QuickDraw_sketches_final", "QuickDraw_sketches"),
    ),
    "folder": Layout(photos=(("photo",),), sketches=("sketch",)),
    "procedural": Layout(photos=(("photo",),), sketches=("sketch",)),
}

#: Benchmarks that carry their own split (``zeroshot/unseen_classes.txt``) instead of a shipped one.
OWN_SPLIT = ("folder", "procedural")
UNSEEN_FILE = "zeroshot/unseen_classes.txt"
#: A folder's own validation classes (optional; else `dmwan train` draws them from the seen ones).
VALIDATION_FILE = "zeroshot/validation_classes.txt"

#: Unseen-class list of each (benchmark, split) in ``dmwan_qdrant/data/splits``.
SPLIT_FILES: dict[tuple[str, str | None], str] = {
    ("sketchy", "1"): "sketchy_split1_unseen.txt",
    ("sketchy", "2"): "sketchy_split2_unseen.txt",
    ("tuberlin", None): "tuberlin_unseen.txt",
    ("quickdraw", None): "quickdraw_unseen.txt",
}


def normalise_class_name(name: str) -> str:
    """The key class names are matched by: lower case, and '_', '-' and spaces alike.

    Folder names and split lists spell classes differently ("hot-air_balloon",
    "hot air balloon", "Hot_Air_Balloon").
    """
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def split_classes(benchmark: str, split: str | None = None) -> list[str]:
    """The shipped unseen-class list of a benchmark split ("1" by default for Sketchy).

    Raises:
        DatasetError: a benchmark or split without a shipped list.
    """
    benchmark = benchmark.lower()
    key = (benchmark, str(split or "1")) if benchmark == "sketchy" else (benchmark, split)
    if key not in SPLIT_FILES:
        known = sorted({f"{b}" + (f" split {s}" if s else "") for b, s in SPLIT_FILES})
        raise DatasetError(f"no shipped split {split!r} for {benchmark!r} (available: {', '.join(known)})")
    text = (resources.files("dmwan_qdrant.data") / "splits" / SPLIT_FILES[key]).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _scan(folder: Path, domain: str) -> dict[str, list[Sample]]:
    """Images per class folder of ``folder`` (sorted, so loading is deterministic)."""
    by_class: dict[str, list[Sample]] = {}
    try:
        class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        for class_dir in class_dirs:
            files = sorted(p for p in class_dir.iterdir() if p.is_file() and is_image_path(p))
            if files:
                by_class.setdefault(class_dir.name, []).extend(Sample(p, class_dir.name, domain) for p in files)
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    return by_class


def _by_key(by_class: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
    """Merge class folders whose names differ only in spelling (photo vs. extended photo folders)."""
    merged: dict[str, list[Sample]] = {}
    for label in sorted(by_class):
        merged.setdefault(normalise_class_name(label), []).extend(by_class[label])
    return merged


def _find(root: Path, layout: Layout) -> tuple[list[Path], Path] | None:
    photo_dirs: list[Path] = []
    for alternative in layout.photos:
        photo_dirs = [root / f for f in alternative if (root / f).is_dir()]
        if photo_dirs:
            break
    sketch_dir = next((root / f for f in layout.sketches if (root / f).is_dir()), None)
    if not photo_dirs or sketch_dir is None:
        return None
    return photo_dirs, sketch_dir


def read_class_list(path: Path) -> list[str]:
    """The class names listed in ``path``, one a line (blank lines skipped).

    Raises:
        DatasetError: the file cannot be read.
    """
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})") from None


def _own_split(root: Path, paired: list[str], spelling: dict[str, str], unseen: int, seed: int) -> list[str]:
    """The unseen classes of a folder dataset: ``unseen`` drawn by ``seed``, else the listed ones."""
    if unseen:
        if unseen > len(paired) - 2:
            raise DatasetError(f"{root}: cannot hold out {unseen} of {len(paired)} classes with photos and "
                               "sketches (training needs at least 2 seen classes)")
        return sorted(spelling[k] for k in random.Random(seed).sample(paired, unseen))
    listed = root / UNSEEN_FILE
    if not listed.is_file():
        raise DatasetError(f"{root}: no {UNSEEN_FILE}; list the classes to hold out there, one a line, "
                           "or draw them with --unseen N")
    wanted = read_class_list(listed)
    if not wanted:
        raise DatasetError(f"{root}: {UNSEEN_FILE} is empty")
    return wanted


def load_benchmark(
    name: str, root: str | Path, split: str | None = None, unseen: int = 0, seed: int = 0
) -> BenchmarkSplit:
    """Load a benchmark's zero-shot split: seen classes for training, unseen ones for testing.

    Args:
        name: "folder", "procedural", "sketchy", "tuberlin" or "quickdraw".
        root: the dataset folder, in one of the layouts of ``LAYOUTS[name]``.
        split: Sketchy only: "1" (25 random unseen classes, the default) or "2" (21 unseen
            classes not in ImageNet-1k).
        unseen: "folder" only: hold out this many classes, drawn by ``seed``, instead of the
            list in ``zeroshot/unseen_classes.txt``.
        seed: the draw of ``unseen``.

    Raises:
        DatasetError: an unknown benchmark or split, a missing root, a layout that is not one of
            ``LAYOUTS[name]``, or unseen classes of the split missing on disk.
    """
    name = name.strip().lower()
    if name not in LAYOUTS:
        raise DatasetError(f"unknown benchmark {name!r} (benchmarks: {', '.join(LAYOUTS)})")
    if name != "sketchy" and split not in (None, ""):
        raise DatasetError(f"{name} has a single standard split; got split {split!r}")
    if unseen and name != "folder":
        raise DatasetError(f"{name} has a standard split; unseen classes are drawn only for 'folder' data")
    if unseen < 0:
        raise DatasetError(f"the number of unseen classes must be positive, not {unseen}")
    split = str(split or "1") if name == "sketchy" else None
    wanted = split_classes(name, split) if name not in OWN_SPLIT else []  # a bad split fails before any disk access
    layout = LAYOUTS[name]
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{name} root {root} does not exist; {layout.describe()}")
    if not root.is_dir():
        raise DatasetError(f"{name} root {root} is not a folder; {layout.describe()}")
    found = _find(root, layout)
    if found is None:
        raise DatasetError(f"{root} is not a {name} dataset: {layout.describe()}")
    photo_dirs, sketch_dir = found
    photos: dict[str, list[Sample]] = {}
    for folder in photo_dirs:
        for label, samples in _scan(folder, "photo").items():
            photos.setdefault(label, []).extend(samples)
    sketches = _scan(sketch_dir, "sketch")
    if not photos or not sketches:
        raise DatasetError(f"{root}: no class folders with images; {layout.describe()}")

    # One spelling per class: the sketch folder's (photo folders may spell it differently).
    spelling = {normalise_class_name(c): c for c in sorted(photos)}
    spelling.update({normalise_class_name(c): c for c in sorted(sketches)})
    photos_by_key = _by_key(photos)
    sketches_by_key = _by_key(sketches)

    if name in OWN_SPLIT:
        wanted = _own_split(root, sorted(photos_by_key.keys() & sketches_by_key.keys(), key=spelling.__getitem__),
                            spelling, unseen, seed)
    wanted_keys = [normalise_class_name(c) for c in wanted]
    missing = [c for c, k in zip(wanted, wanted_keys) if k not in photos_by_key or k not in sketches_by_key]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(f"{root}: unseen classes of the {name} split not found on disk (photos and sketches): "
                           f"{', '.join(missing[:5])}{more}")
    unseen_keys = set(wanted_keys)
    # Classes with photos but no sketches (or the reverse) cannot form pairs: left out.
    seen_keys = sorted((k for k in photos_by_key.keys() & sketches_by_key.keys() if k not in unseen_keys),
                       key=spelling.__getitem__)
    unseen_sorted = sorted(unseen_keys, key=spelling.__getitem__)

    def gather(by_key: dict[str, list[Sample]], keys: list[str]) -> list[Sample]:
        # Relabel with the canonical spelling so photos and sketches of a class share one label.
        return [Sample(s.path, spelling[k], s.domain) for k in keys for s in by_key[k]]

    return BenchmarkSplit(
        name=f"{name}-split{split}" if split else name,
        root=root,
        seen_classes=[spelling[k] for k in seen_keys],
        unseen_classes=[spelling[k] for k in unseen_sorted],
        train_photos=gather(photos_by_key, seen_keys),
        train_sketches=gather(sketches_by_key, seen_keys),
        test_photos=gather(photos_by_key, unseen_sorted),
        test_sketches=gather(sketches_by_key, unseen_sorted),
    )
