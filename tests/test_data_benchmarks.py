"""Real-benchmark loaders on small fixture trees in each downloaded layout, and the shipped splits."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dmwan_qdrant.data import BenchmarkSplit, load_benchmark, normalise_class_name, split_classes
from dmwan_qdrant.errors import DatasetError, UsageError

SEEN = ["zz_seen_one", "zz_seen_two"]


def _tree(root: Path, folder: str, classes: list[str], n: int = 2, suffix: str = ".png") -> None:
    for c in classes:
        d = root / folder / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (4, 4), (i * 40, 0, 0)).save(d / f"{i}{suffix}")
        (d / "Thumbs.db").write_bytes(b"not an image")  # ignored: not an image suffix


def _on_disk(names: list[str], style: str) -> list[str]:
    return [c.replace(" ", style).replace("_", style) for c in names]


@pytest.mark.parametrize(
    "name,split,photo_dirs,sketch_dir,style",
    [
        ("sketchy", "1", ["photo/tx_000000000000"], "sketch/tx_000000000000", "_"),
        ("sketchy", "2", ["256x256/photo/tx_000000000000"], "256x256/sketch/tx_000000000000", "_"),
        ("sketchy", "2", ["photo"], "sketch", "-"),
        ("tuberlin", None, ["ImageResized_ready"], "png_ready", " "),
        ("tuberlin", None, ["photo"], "sketch", "_"),
        ("quickdraw", None, ["images"], "sketch", "_"),
        ("quickdraw", None, ["QuickDraw_images_final"], "QuickDraw_sketches_final", " "),
        ("quickdraw", None, ["photo"], "sketch", "-"),
    ],
)
def test_layouts_load_with_their_split(tmp_path, name, split, photo_dirs, sketch_dir, style):
    unseen = split_classes(name, split)
    classes = _on_disk(unseen, style) + SEEN
    for folder in photo_dirs:
        _tree(tmp_path, folder, classes, n=3, suffix=".jpg")
    _tree(tmp_path, sketch_dir, classes, n=2)
    bench = load_benchmark(name, tmp_path, split)
    assert isinstance(bench, BenchmarkSplit)
    assert bench.seen_classes == SEEN
    assert len(bench.unseen_classes) == len(unseen)
    assert {normalise_class_name(c) for c in bench.unseen_classes} == {normalise_class_name(c) for c in unseen}
    assert len(bench.train_photos) == 3 * 2 and len(bench.train_sketches) == 2 * 2
    assert len(bench.test_photos) == 3 * len(unseen) and len(bench.test_sketches) == 2 * len(unseen)
    assert {s.domain for s in bench.test_photos} == {"photo"} and {s.domain for s in bench.test_sketches} == {"sketch"}
    assert {s.label for s in bench.test_photos} == set(bench.unseen_classes)
    assert bench.name == (f"sketchy-split{split}" if name == "sketchy" else name)
    assert name in bench.summary() and "\n" not in bench.summary()


def test_sketchy_extended_photos_are_merged(tmp_path):
    unseen = split_classes("sketchy", "1")
    _tree(tmp_path, "photo/tx_000000000000", unseen + SEEN, n=1, suffix=".jpg")
    _tree(tmp_path, "EXTEND_image_sketchy", unseen + SEEN, n=2, suffix=".jpg")
    _tree(tmp_path, "sketch/tx_000000000000", unseen + SEEN, n=1)
    bench = load_benchmark("sketchy", tmp_path)  # split 1 by default
    assert bench.name == "sketchy-split1"
    assert len(bench.train_photos) == 2 * 3 and len(bench.test_photos) == 25 * 3


def test_class_names_match_across_spellings(tmp_path):
    # TU-Berlin's list says "hot air balloon", "frying-pan", "t-shirt"; folders may differ, and
    # photo and sketch folders may differ from each other.
    unseen = split_classes("tuberlin")
    photo_names = [c.replace(" ", "_").upper() for c in unseen]
    sketch_names = [c.replace("-", " ") for c in unseen]
    _tree(tmp_path, "ImageResized_ready", photo_names + SEEN)
    _tree(tmp_path, "png_ready", sketch_names + SEEN)
    bench = load_benchmark("tuberlin", tmp_path)
    assert "hot air balloon" in bench.unseen_classes and "frying pan" in bench.unseen_classes
    assert len(bench.test_photos) == len(bench.test_sketches) == 2 * 30
    assert {s.label for s in bench.test_photos} == {s.label for s in bench.test_sketches}
    assert normalise_class_name(" Hot_Air-balloon ") == normalise_class_name("hot air balloon")


def test_classes_without_both_domains_are_left_out(tmp_path):
    unseen = split_classes("quickdraw")
    _tree(tmp_path, "images", unseen + SEEN + ["photos_only"])
    _tree(tmp_path, "sketch", unseen + SEEN + ["sketches_only"])
    assert load_benchmark("quickdraw", tmp_path).seen_classes == SEEN


def test_shipped_split_sizes():
    sizes = {("sketchy", "1"): 25, ("sketchy", "2"): 21, ("tuberlin", None): 30, ("quickdraw", None): 30}
    for (name, split), size in sizes.items():
        classes = split_classes(name, split)
        assert len(classes) == size
        assert len({normalise_class_name(c) for c in classes}) == size
    assert split_classes("sketchy", "2") == [
        "bat", "cabin", "cow", "dolphin", "door", "giraffe", "helicopter", "mouse", "pear", "raccoon",
        "rhinoceros", "saw", "scissors", "seagull", "skyscraper", "songbird", "sword", "tree", "wheelchair",
        "windmill", "window",
    ]


def test_missing_or_malformed_roots_name_the_expected_layout(tmp_path):
    with pytest.raises(DatasetError, match="does not exist.*photo/tx_000000000000 \\+ EXTEND_image_sketchy"):
        load_benchmark("sketchy", tmp_path / "nope", "1")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="not a folder.*ImageResized_ready"):
        load_benchmark("tuberlin", tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a quickdraw dataset: expected class folders under one of: images"):
        load_benchmark("quickdraw", tmp_path / "empty")
    (tmp_path / "hollow" / "images").mkdir(parents=True)
    (tmp_path / "hollow" / "sketch").mkdir()
    with pytest.raises(DatasetError, match="no class folders with images"):
        load_benchmark("quickdraw", tmp_path / "hollow")
    _tree(tmp_path / "partial", "images", ["bat", "cow"])
    _tree(tmp_path / "partial", "sketch", ["bat", "cow"])
    with pytest.raises(DatasetError, match="not found on disk.*: dolphin, door, .* and 23 more"):
        load_benchmark("quickdraw", tmp_path / "partial")


def test_unknown_benchmarks_and_splits(tmp_path):
    with pytest.raises(DatasetError, match="unknown benchmark"):
        load_benchmark("imagenet", tmp_path)
    with pytest.raises(DatasetError, match="single standard split"):
        load_benchmark("tuberlin", tmp_path, "2")
    with pytest.raises(DatasetError, match="no shipped split"):
        load_benchmark("sketchy", tmp_path, "3")


def test_procedural_root_needs_its_split_files(tmp_path):
    _tree(tmp_path, "photo", ["a", "b", "c"])
    _tree(tmp_path, "sketch", ["a", "b", "c"])
    with pytest.raises(DatasetError, match="unseen_classes.txt"):
        load_benchmark("procedural", tmp_path)
    (tmp_path / "zeroshot").mkdir()
    (tmp_path / "zeroshot" / "unseen_classes.txt").write_text("c\n")
    bench = load_benchmark("procedural", tmp_path)
    assert bench.seen_classes == ["a", "b"] and bench.unseen_classes == ["c"]


def test_limit_caps_each_class_deterministically(tmp_path):
    unseen = split_classes("quickdraw")
    _tree(tmp_path, "images", unseen + SEEN, n=5)
    _tree(tmp_path, "sketch", unseen + SEEN, n=4)
    bench = load_benchmark("quickdraw", tmp_path)
    small = bench.limit(2, seed=1)
    assert len(small.train_photos) == len(small.train_sketches) == 2 * 2
    assert len(small.test_photos) == 2 * 30
    assert set(small.train_photos) <= set(bench.train_photos)
    assert small.train_photos == bench.limit(2, seed=1).train_photos
    assert small.seen_classes == bench.seen_classes and small.unseen_classes == bench.unseen_classes


def test_folder_dataset_takes_the_listed_unseen_classes(tmp_path):
    _tree(tmp_path, "photo", ["cat", "dog", "hot_air balloon", "owl"])
    _tree(tmp_path, "sketch", ["cat", "dog", "hot_air balloon", "owl", "only-sketches"])
    (tmp_path / "zeroshot").mkdir()
    (tmp_path / "zeroshot" / "unseen_classes.txt").write_text("Hot Air Balloon\n")
    bench = load_benchmark("folder", tmp_path)
    assert bench.unseen_classes == ["hot_air balloon"]
    assert bench.seen_classes == ["cat", "dog", "owl"]  # a class without photos cannot be trained on
    assert {s.label for s in bench.test_photos} == {"hot_air balloon"}


def test_folder_dataset_draws_unseen_classes_by_seed(tmp_path):
    names = [f"class{i}" for i in range(8)]
    _tree(tmp_path, "photo", names)
    _tree(tmp_path, "sketch", names)
    (tmp_path / "zeroshot").mkdir()
    (tmp_path / "zeroshot" / "unseen_classes.txt").write_text("class0\n")
    first = load_benchmark("folder", tmp_path, unseen=3, seed=1)
    assert len(first.unseen_classes) == 3 and first.unseen_classes != ["class0"]  # --unseen wins over the list
    assert load_benchmark("folder", tmp_path, unseen=3, seed=1).unseen_classes == first.unseen_classes
    draws = {tuple(load_benchmark("folder", tmp_path, unseen=3, seed=s).unseen_classes) for s in range(5)}
    assert len(draws) > 1
    assert not set(first.unseen_classes) & set(first.seen_classes)
    with pytest.raises(DatasetError, match="at least 2 seen classes"):
        load_benchmark("folder", tmp_path, unseen=7)
    with pytest.raises(DatasetError, match="standard split"):
        load_benchmark("tuberlin", tmp_path, unseen=3)


def test_folder_dataset_errors_name_the_layout(tmp_path):
    with pytest.raises(DatasetError, match="photo.*sketch"):
        load_benchmark("folder", tmp_path)  # empty folder
    _tree(tmp_path, "photo", ["a", "b", "c"])
    _tree(tmp_path, "sketch", ["a", "b", "c"])
    with pytest.raises(DatasetError, match="--unseen N") as info:
        load_benchmark("folder", tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "zeroshot").mkdir()
    (tmp_path / "zeroshot" / "unseen_classes.txt").write_text("zebra\n")
    with pytest.raises(DatasetError, match="zebra"):
        load_benchmark("folder", tmp_path)


def test_validation_classes_are_held_out_of_the_seen_classes(tmp_path):
    from dmwan_qdrant.data.layout import validation_class_count

    names = [f"class{i}" for i in range(12)]
    _tree(tmp_path, "photo", names, n=3)
    _tree(tmp_path, "sketch", names, n=2)
    bench = load_benchmark("folder", tmp_path, unseen=2, seed=0)
    held = bench.hold_out_validation(0.15, seed=0)
    assert len(held.validation_classes) == 2  # round(0.15 * 10) = 2
    assert not set(held.validation_classes) & set(held.seen_classes)
    assert set(held.seen_classes) | set(held.validation_classes) == set(bench.seen_classes)
    assert held.unseen_classes == bench.unseen_classes and held.test_photos == bench.test_photos
    assert {s.label for s in held.train_photos + held.train_sketches} == set(held.seen_classes)
    assert {s.label for s in held.val_photos} == {s.label for s in held.val_sketches} == set(held.validation_classes)
    assert len(held.train_photos) + len(held.val_photos) == len(bench.train_photos)
    # Drawn by seed: the same seed, the same classes.
    assert bench.hold_out_validation(0.15, seed=0).validation_classes == held.validation_classes
    assert "validation classes" in held.summary()
    small = held.limit(1)
    assert small.validation_classes == held.validation_classes and len(small.val_photos) == 2
    with pytest.raises(UsageError, match="already"):
        held.hold_out_validation(0.15)
    # Off, and too few seen classes to spare two while keeping two to train on.
    assert bench.hold_out_validation(0.0).validation_classes == []
    assert validation_class_count(3, 0.15) == 0 and validation_class_count(4, 0.15) == 2
    assert validation_class_count(22, 0.15) == 3
    with pytest.raises(UsageError, match="validation fraction"):
        validation_class_count(10, 1.5)
