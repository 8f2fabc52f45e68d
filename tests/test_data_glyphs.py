"""The glyphs benchmark (``ProceduralConfig(kind="glyphs")``): library, determinism, layout,
manifest, low-quality share, and that object benchmarks keep their identity."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmwan_qdrant.data import (
    ABSTRACT,
    CLUTTERED,
    GLYPH_NAMES,
    MAX_GLYPH_CLASSES,
    WRONG_STROKE,
    ProceduralConfig,
    choose_classes,
    class_structures,
    generate_benchmark,
    glyph_drawing,
    glyph_library,
    load_benchmark,
    read_manifest,
)
from dmwan_qdrant.errors import UsageError

from test_data_procedural import _digest  # one tree digest for both generators' determinism tests

TINY = dict(n_classes=6, unseen_classes=2, photos_per_class=4, sketches_per_class=4, image_size=32, workers=1,
            kind="glyphs")



def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_library_has_distinct_glyphs_of_two_to_four_strokes():
    library = glyph_library()
    assert list(library) == GLYPH_NAMES and len(library) == MAX_GLYPH_CLASSES >= 100
    assert class_structures("glyphs") == library
    for name, glyph in library.items():
        assert 2 <= len(glyph) <= 4, name
        pts = np.concatenate([np.array(s.points) for s in glyph])
        assert np.abs(pts).max() < 1.5, name  # the glyph frame, before the pose
    # Distinct drawings, not just distinct numbers: thickened canonical drawings of any two
    # classes overlap far from fully, and the prototypes of different classes differ clearly.
    masks = {n: glyph_drawing(g, 32, 4) for n, g in library.items()}
    worst = max(_iou(masks[a], masks[b]) for a, b in itertools.combinations(GLYPH_NAMES[:60], 2))
    assert worst <= 0.4
    assert all(m.sum() > 40 for m in masks.values())


def test_same_config_gives_byte_identical_files_with_one_or_two_workers(tmp_path, monkeypatch):
    from dmwan_qdrant.data import procedural

    monkeypatch.setattr(procedural, "_POOL_MIN_IMAGES", 0)  # use the process pool even when tiny
    one = generate_benchmark(tmp_path / "one", ProceduralConfig(**{**TINY, "workers": 1}, low_quality=0.5))
    two = generate_benchmark(tmp_path / "two", ProceduralConfig(**{**TINY, "workers": 2}, low_quality=0.5))
    assert _digest(one) == _digest(two)
    other = generate_benchmark(tmp_path / "other", ProceduralConfig(**TINY, low_quality=0.5, seed=1))
    assert _digest(other) != _digest(one)


def test_layout_manifest_and_low_quality_share(tmp_path):
    cfg = ProceduralConfig(**TINY, low_quality=0.5)
    root = generate_benchmark(tmp_path / "g", cfg)
    manifest = read_manifest(root)
    assert manifest["kind"] == "glyphs" and manifest["config"]["kind"] == "glyphs"
    assert manifest["classes"] == sorted(manifest["seen_classes"] + manifest["unseen_classes"])
    assert set(manifest["classes"]) <= set(GLYPH_NAMES) and len(manifest["unseen_classes"]) == 2
    assert (manifest["seen_classes"], manifest["unseen_classes"]) == choose_classes(cfg)
    for name in manifest["classes"]:
        for domain in ("photo", "sketch"):
            assert sorted(p.name for p in (root / domain / name).iterdir()) == [f"{i:05d}.png" for i in range(4)]
        # The stroke programs, JSON-able and the library's own.
        assert manifest["structures"][name] == [s.to_dict() for s in glyph_library()[name]]
        assert {s["kind"] for s in manifest["structures"][name]} <= {"line", "zigzag", "curve", "arc", "spiral", "loop"}
    # An exact share per class and domain: two of four images.
    details = manifest["low_quality_details"]
    assert sorted(details) == manifest["low_quality"] and len(details) == 6 * 2 * 2
    kinds = set()
    for rel, d in details.items():
        assert (root / rel).is_file()
        domain, label = rel.split("/")[:2]
        kinds.add(d["kind"])
        if domain == "photo":
            assert d == {"kind": CLUTTERED}
        elif d["kind"] == WRONG_STROKE:
            assert d["donor"] in manifest["classes"] and d["donor"] != label
        else:
            assert d == {"kind": ABSTRACT}
    assert kinds == {CLUTTERED, ABSTRACT, WRONG_STROKE}
    assert read_manifest(generate_benchmark(tmp_path / "clean", ProceduralConfig(**TINY)))["low_quality"] == []


def test_loadable_as_a_procedural_benchmark(tmp_path):
    root = generate_benchmark(tmp_path / "g", ProceduralConfig(**TINY))
    split = load_benchmark("procedural", root)
    assert len(split.seen_classes) == 4 and len(split.unseen_classes) == 2
    assert len(split.train_photos) == len(split.train_sketches) == 4 * 4
    assert len(split.test_photos) == len(split.test_sketches) == 2 * 4
    photo = Image.open(split.train_photos[0].path)
    sketch = Image.open(split.train_sketches[0].path)
    assert photo.size == sketch.size == (32, 32) and photo.mode == sketch.mode == "RGB"
    # Sketches are dark lines on white; photos are scenes.
    assert np.asarray(sketch).mean() > 180 and np.asarray(photo).mean() < 200
    # Idempotent: the same config keeps the files, another kind replaces them.
    stamp = (root / "manifest.json").stat().st_mtime_ns
    generate_benchmark(root, ProceduralConfig(**{**TINY, "workers": 2}))
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    generate_benchmark(root, ProceduralConfig(**{**TINY, "kind": "objects"}))
    assert "kind" not in read_manifest(root)["config"] and read_manifest(root)["kind"] == "objects"


def test_sketches_match_their_class_better_than_other_classes(tmp_path):
    # The clean sketches of a class overlap its own canonical drawing more than other classes'
    # drawings (up to pose and jitter): a human, and a model, can tell the classes apart.
    cfg = ProceduralConfig(**{**TINY, "sketches_per_class": 6, "image_size": 48})
    root = generate_benchmark(tmp_path / "g", cfg)
    classes = read_manifest(root)["classes"]
    library = glyph_library()
    drawings = {c: glyph_drawing(library[c], 48, 7) for c in classes}
    hits = 0
    for c in classes:
        sketches = sorted((root / "sketch" / c).glob("*.png"))
        ink = np.mean([np.asarray(Image.open(p).convert("L")) < 128 for p in sketches], axis=0)
        scores = {d: float((ink * drawings[d]).sum() / max(1.0, ink.sum())) for d in classes}
        hits += max(scores, key=scores.get) == c
    assert hits >= len(classes) - 1


def test_object_configs_keep_their_identity():
    # Benchmarks written before kinds existed stay valid: "objects" adds nothing to the identity.
    cfg = ProceduralConfig(n_classes=30, unseen_classes=8, photos_per_class=60, sketches_per_class=60,
                           image_size=48, low_quality=0.1, seed=0)
    assert cfg.kind == "objects"
    assert cfg.identity() == {"n_classes": 30, "unseen_classes": 8, "photos_per_class": 60,
                              "sketches_per_class": 60, "image_size": 48, "low_quality": 0.1, "seed": 0}
    glyphs = ProceduralConfig(**{**cfg.identity(), "kind": "glyphs"})
    assert glyphs.identity() == {**cfg.identity(), "kind": "glyphs"}
    assert choose_classes(glyphs)[0][0].startswith("glyph-")


def test_bad_kind_and_class_count_are_usage_errors():
    with pytest.raises(UsageError, match="kind must be one of objects, glyphs") as err:
        ProceduralConfig(**{**TINY, "kind": "runes"})
    assert "\n" not in str(err.value)
    ProceduralConfig(**{**TINY, "n_classes": MAX_GLYPH_CLASSES, "unseen_classes": 50})
    with pytest.raises(UsageError, match=f"2..{MAX_GLYPH_CLASSES}"):
        ProceduralConfig(**{**TINY, "n_classes": MAX_GLYPH_CLASSES + 1})
    with pytest.raises(UsageError, match="for kind objects"):
        ProceduralConfig(**{**TINY, "kind": "objects", "n_classes": MAX_GLYPH_CLASSES})
