"""The procedural benchmark: class library, determinism, split, low-quality share, idempotence."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from dmwan_qdrant.data import (
    CLASS_NAMES,
    CLASSES,
    KINDS,
    ProceduralConfig,
    generate_benchmark,
    load_benchmark,
    read_manifest,
    silhouette,
)
from dmwan_qdrant.data.render import Pose
from dmwan_qdrant.data.shapes import stroke_paths
from dmwan_qdrant.errors import DatasetError, UsageError

TINY = dict(n_classes=6, unseen_classes=2, photos_per_class=4, sketches_per_class=4, image_size=32, workers=1)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _line_drawing(parts, size: int = 48) -> np.ndarray:
    """The clean sketch of a class at the identity pose, thickened a little."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    pose = Pose(0.0, 1.0, 0.0, 0.0, False, 1.0)
    for part in parts:
        for path, closed in stroke_paths(part):
            pts = pose.to_pixels(path, size)
            draw.line(pts + ([pts[0]] if closed else []), fill=255, width=2)
    return np.asarray(image.filter(ImageFilter.MaxFilter(3))) > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_class_library_has_sixty_distinct_named_objects():
    assert len(CLASS_NAMES) >= 60
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    for name, parts in CLASSES.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", name), name
        assert parts and all(p.kind in KINDS for p in parts), name
    assert len({parts for parts in CLASSES.values()}) == len(CLASSES)
    # Distinct structure, not just distinct numbers: the clean line drawings of any two classes
    # overlap far from fully, and so do most silhouettes.
    drawings = {n: _line_drawing(p) for n, p in CLASSES.items()}
    worst = max((_iou(drawings[a], drawings[b]), a, b) for a, b in itertools.combinations(drawings, 2))
    assert worst[0] < 0.8, worst
    masks = {n: silhouette(p) for n, p in CLASSES.items()}
    assert all(_iou(masks[a], masks[b]) < 0.9 for a, b in itertools.combinations(masks, 2))


def test_same_config_gives_byte_identical_files(tmp_path):
    a = generate_benchmark(tmp_path / "a", ProceduralConfig(**TINY, seed=3, low_quality=0.5))
    b = generate_benchmark(tmp_path / "b", ProceduralConfig(**TINY, seed=3, low_quality=0.5))
    assert _digest(a) == _digest(b)
    c = generate_benchmark(tmp_path / "c", ProceduralConfig(**TINY, seed=4, low_quality=0.5))
    assert _digest(c) != _digest(a)


def test_worker_count_does_not_change_the_files(tmp_path, monkeypatch):
    from dmwan_qdrant.data import procedural

    monkeypatch.setattr(procedural, "_POOL_MIN_IMAGES", 0)  # use the process pool even when tiny
    one = generate_benchmark(tmp_path / "one", ProceduralConfig(**{**TINY, "workers": 1}))
    two = generate_benchmark(tmp_path / "two", ProceduralConfig(**{**TINY, "workers": 2}))
    assert _digest(one) == _digest(two)


def test_split_is_disjoint_and_loadable(tmp_path):
    root = generate_benchmark(tmp_path / "b", ProceduralConfig(**TINY))
    manifest = read_manifest(root)
    seen = (root / "zeroshot" / "seen_classes.txt").read_text().split()
    unseen = (root / "zeroshot" / "unseen_classes.txt").read_text().split()
    assert not set(seen) & set(unseen)
    assert sorted(seen + unseen) == manifest["classes"] and len(unseen) == 2
    split = load_benchmark("procedural", root)
    assert split.seen_classes == seen and split.unseen_classes == unseen
    assert len(split.train_photos) == len(split.train_sketches) == 4 * 4
    assert len(split.test_photos) == len(split.test_sketches) == 2 * 4
    assert {s.label for s in split.test_sketches} == set(unseen)
    photo = Image.open(split.train_photos[0].path)
    sketch = Image.open(split.train_sketches[0].path)
    assert photo.size == sketch.size == (32, 32) and photo.mode == sketch.mode == "RGB"
    # Sketches are dark lines on white; photos are not.
    assert np.asarray(sketch).mean() > 180 and np.asarray(photo).mean() < 200


def test_unseen_fraction_and_seed_choose_the_split():
    from dmwan_qdrant.data import choose_classes

    seen, unseen = choose_classes(ProceduralConfig(n_classes=20, unseen_classes=0.25))
    assert len(unseen) == 5 and len(seen) == 15
    assert choose_classes(ProceduralConfig(n_classes=20, unseen_classes=5, seed=1)) != (seen, unseen)


def test_low_quality_share_is_recorded(tmp_path):
    cfg = ProceduralConfig(**TINY, low_quality=0.25)
    root = generate_benchmark(tmp_path / "lq", cfg)
    manifest = json.loads((root / "manifest.json").read_text())
    # An exact share per class and domain: one of four images.
    assert len(manifest["low_quality"]) == 6 * 2 * 1
    details = manifest["low_quality_details"]
    assert sorted(details) == manifest["low_quality"]
    for rel, d in details.items():
        assert (root / rel).is_file()
        domain, label = rel.split("/")[:2]
        if domain == "photo":
            assert d["kind"] == "cluttered"
        else:
            assert d["kind"] in ("abstract", "wrong_part")
            if d["kind"] == "wrong_part":
                assert d["donor"] in manifest["classes"] and d["donor"] != label
    clean = generate_benchmark(tmp_path / "clean", ProceduralConfig(**TINY))
    assert read_manifest(clean)["low_quality"] == []


def test_rerun_is_idempotent_and_changes_regenerate(tmp_path):
    cfg = ProceduralConfig(**TINY)
    root = generate_benchmark(tmp_path / "b", cfg)
    image = next((root / "photo").rglob("*.png"))
    stamps = (root / "manifest.json").stat().st_mtime_ns, image.stat().st_mtime_ns
    generate_benchmark(root, ProceduralConfig(**{**TINY, "workers": 3}))  # workers do not matter
    assert ((root / "manifest.json").stat().st_mtime_ns, image.stat().st_mtime_ns) == stamps
    image.unlink()  # an incomplete benchmark is regenerated
    generate_benchmark(root, cfg)
    assert image.is_file()
    generate_benchmark(root, ProceduralConfig(**{**TINY, "photos_per_class": 2}))
    assert len(list((root / "photo").rglob("*.png"))) == 6 * 2


def test_concurrent_generators_share_one_benchmark(tmp_path):
    # Each training worker calls the generator on the same root: one writes, the others reuse.
    from concurrent.futures import ThreadPoolExecutor

    cfg = ProceduralConfig(**TINY)
    with ThreadPoolExecutor(3) as pool:
        roots = list(pool.map(lambda _: generate_benchmark(tmp_path / "shared", cfg), range(3)))
    assert roots == [tmp_path / "shared"] * 3
    assert _digest(tmp_path / "shared") == _digest(generate_benchmark(tmp_path / "alone", cfg))


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError, match="refusing to overwrite"):
        generate_benchmark(tmp_path / "mine", ProceduralConfig(**TINY))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]


@pytest.mark.parametrize("bad", [dict(n_classes=1), dict(unseen_classes=6), dict(low_quality=1.5), dict(image_size=4)])
def test_bad_configs_are_usage_errors(bad):
    with pytest.raises(UsageError):
        ProceduralConfig(**{**TINY, **bad})
