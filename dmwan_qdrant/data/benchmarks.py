"""Loaders for the ZS-SBIR benchmarks, behind one function, with their standard splits.

Each benchmark is read from the folder layouts users actually download (listed in
``LAYOUTS``); the unseen classes of each split ship with this package in ``splits/``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from ..errors import DatasetError
from ..imageio import is_image_path
from .layout import BenchmarkSplit, Sample

#: Accepted (photo folder, sketch folder) pairs per benchmark, first match wins. A folder may
#: be given as several alternatives whose classes are merged (Sketchy's extended photos).
LAYOUTS: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "sketchy": [
        (("photo/tx_000000000000", "EXTEND_image_sketchy"), ("sketch/tx_000000000000",)),
        (("256x256/photo/tx_000000000000", "EXTEND_image_sketchy"), ("256x256/sketch/tx_000000000000",)),
        (("EXTEND_image_sketchy",), ("sketch/tx_000000000000",)),
        (("photo",), ("sketch",)),
    ],
    "tuberlin": [
        (("ImageResized_ready",), ("png_ready",)),
        (("images",), ("sketches",)),
        (("photo",), ("sketch",)),
    ],
    "quickdraw": [
        (("images",), ("sketch",)),
        (("QuickDraw_images_final",), ("QuickDraw_sketches_final",)),
        (("photo",), ("sketch",)),
    ],
    "procedural": [(("photo",), ("sketch",))],
}

#: Unseen-class list file of each (benchmark, split), in ``dmwan_qdrant/data/splits``.
SPLIT_FILES = {
    ("sketchy", "1"): "sketchy_split1_unseen.txt",
    ("sketchy", "2"): "sketchy_split2_unseen.txt",
    ("tuberlin", None): "tuberlin_unseen.txt",
    ("quickdraw", None): "quickdraw_unseen.txt",
}


def normalise_class_name(name: str) -> str:
    """Key under which class names from folders and split lists are matched."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def split_classes(benchmark: str, split: str | None) -> list[str]:
    """The shipped unseen-class list of a benchmark split."""
    key = (benchmark, None if benchmark != "sketchy" else str(split or "1"))
    if key not in SPLIT_FILES:
        raise DatasetError(f"no split {split!r} for {benchmark} (splits: {', '.join(str(k[1]) for k in SPLIT_FILES if k[0] == benchmark)})")
    text = (resources.files("dmwan_qdrant.data") / "splits" / SPLIT_FILES[key]).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def _scan(root: Path, folders: tuple[str, ...], domain: str) -> dict[str, list[Sample]]:
    by_class: dict[str, list[Sample]] = {}
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in class_dir.iterdir() if p.is_file() and is_image_path(p))
            by_class.setdefault(class_dir.name, []).extend(Sample(p, class_dir.name, domain) for p in files)
    return by_class


def _expected(name: str) -> str:
    options = [" + ".join(photo) + " and " + "/".join(sketch) for photo, sketch in LAYOUTS[name]]
    return f"expected class folders under one of: {'; '.join(options)}"


def load_benchmark(name: str, root: str | Path, split: str | None = None) -> BenchmarkSplit:
    """Load a benchmark's zero-shot split.

    Args:
        name: "procedural", "sketchy", "tuberlin" or "quickdraw".
        root: the dataset folder.
        split: "1" (25 random unseen classes) or "2" (21 not in ImageNet-1k) for Sketchy.

    Raises:
        DatasetError: unknown name, missing root, or a layout that is not one of ``LAYOUTS``.
    """
    name = name.lower()
    if name not in LAYOUTS:
        raise DatasetError(f"unknown benchmark {name!r} (benchmarks: {', '.join(LAYOUTS)})")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{name} root {root} does not exist; {_expected(name)}")
    for photo_dirs, sketch_dirs in LAYOUTS[name]:
        if (root / photo_dirs[0]).is_dir() and (root / sketch_dirs[0]).is_dir():
            photos = _scan(root, photo_dirs, "photo")
            sketches = _scan(root, sketch_dirs, "sketch")
            break
    else:
        raise DatasetError(f"{root} is not a {name} dataset: {_expected(name)}")
    if not photos or not sketches:
        raise DatasetError(f"{root}: no class folders with images; {_expected(name)}")

    if name == "procedural":
        unseen_file = root / "zeroshot" / "unseen_classes.txt"
        if not unseen_file.is_file():
            raise DatasetError(f"{root}: missing zeroshot/unseen_classes.txt of the procedural benchmark")
        wanted = [c for c in unseen_file.read_text().split() if c]
    else:
        wanted = split_classes(name, split)
    # Folder names and split lists spell classes differently ("hot-air_balloon" / "hot air balloon").
    folder_of = {normalise_class_name(c): c for c in sorted(set(photos) | set(sketches))}
    missing = [c for c in wanted if normalise_class_name(c) not in folder_of]
    if missing:
        raise DatasetError(f"{root}: unseen classes of the split not found on disk: {', '.join(missing[:5])}"
                           f"{' ...' if len(missing) > 5 else ''}")
    unseen = sorted(folder_of[normalise_class_name(c)] for c in wanted)
    seen = sorted(c for c in folder_of.values() if c not in set(unseen) and c in photos and c in sketches)

    def gather(by_class: dict[str, list[Sample]], classes: list[str]) -> list[Sample]:
        return [s for c in classes for s in by_class.get(c, [])]

    return BenchmarkSplit(
        name=f"{name}{'-split' + str(split) if split else ''}",
        root=root,
        seen_classes=seen,
        unseen_classes=unseen,
        train_photos=gather(photos, seen),
        train_sketches=gather(sketches, seen),
        test_photos=gather(photos, unseen),
        test_sketches=gather(sketches, unseen),
    )
