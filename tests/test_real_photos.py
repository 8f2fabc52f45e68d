"""The real-photo benchmark (`benchmarks/real_photos.py`) on a tiny generated stand-in: folder
layout, distractors, the Qt resource reader, photo naming, and the scores (no apt or npm here)."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "real_photos.py"


@pytest.fixture(scope="module")
def rp():
    spec = importlib.util.spec_from_file_location("real_photos", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_photos"] = module
    spec.loader.exec_module(module)
    return module


COLOURS = {"cat": (220, 30, 30), "dog": (30, 200, 30), "tree": (30, 30, 220), "fish": (200, 200, 30)}


def _image(label: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, COLOURS[label] + ((255,) if mode == "RGBA" else ()))


def _build(rp, out: Path) -> dict:
    Pic = rp.Picture
    photos = [Pic("cat", "cat-a", _image("cat", (800, 600), "RGBA")), Pic("cat", "cat-b", _image("cat")),
              Pic("dog", "dog-a", _image("dog"), {"licence": "CC0-1.0"}),
              Pic("tree", "tree-a", _image("tree")), Pic("tree", "tree-b", _image("tree"))]
    sketches = [Pic("cat", "set-cat", _image("cat")), Pic("cat", "set-cat-2", _image("cat")),
                Pic("dog", "set-dog", _image("dog")), Pic("fish", "set-fish", _image("fish"))]
    return rp.write_benchmark(out, photos, sketches, {"use": "test"})


def test_layout_and_distractors(rp, tmp_path):
    (tmp_path / "photo" / "stale").mkdir(parents=True)  # an earlier build's leftovers go
    manifest = _build(rp, tmp_path)
    assert (tmp_path / "zeroshot" / "unseen_classes.txt").read_text().split() == ["cat", "dog"]
    assert sorted(p.name for p in (tmp_path / "photo").iterdir()) == ["cat", "dog", "tree"]
    assert sorted(p.name for p in (tmp_path / "sketch").iterdir()) == ["cat", "dog"]  # fish: no photo
    assert sorted(p.name for p in (tmp_path / "sketch" / "cat").iterdir()) == ["set-cat-2.png", "set-cat.png"]
    big = Image.open(tmp_path / "photo" / "cat" / "cat-a.png")
    assert big.mode == "RGB" and big.size == (512, 384)
    assert manifest["scored_classes"] == {"cat": {"photos": 2, "sketches": 2}, "dog": {"photos": 1, "sketches": 1}}
    assert manifest["distractor_classes"] == {"tree": 2}
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["use"] == "test" and len(on_disk["files"]) == 8
    assert {"file": "photo/dog/dog-a.png", "kind": "photo", "class": "dog", "licence": "CC0-1.0"} in on_disk["files"]


class _ColourModel:
    """Embeds an image as its mean colour: a perfect model for the stand-in."""

    def _embed(self, images):
        from types import SimpleNamespace

        return SimpleNamespace(global_=np.stack([np.asarray(i, np.float32).mean((0, 1)) for i in images]))

    embed_sketches = embed_photos = _embed


def test_scores_a_perfect_and_a_tiny_model(rp, tmp_path, tiny_model):
    _build(rp, tmp_path)
    perfect = rp.score(_ColourModel(), tmp_path)
    assert (perfect["queries"], perfect["classes"], perfect["gallery"], perfect["gallery_classes"]) == (3, 2, 5, 3)
    assert perfect["mAP@all plain"] == perfect["mAP@all"] == perfect["top1"] == 1.0
    assert perfect["P@10"] == pytest.approx((2 / 10 * 2 + 1 / 10) / 3)  # 5 photos: at most 2 of 10 relevant
    assert perfect["per_class_mAP@all"] == {"cat": 1.0, "dog": 1.0}
    r = rp.score(tiny_model, tmp_path)
    for key in ("mAP@all plain", "mAP@all", "P@10", "top1"):
        assert 0.0 <= r[key] <= 1.0, key
    assert r["mAP@all plain"] >= 1 / 5 - 1e-6  # a relevant photo is at worst ranked last of five


def _rcc(files: dict[str, bytes]) -> bytes:
    """A version-1 Qt resource holding ``files`` (one folder level, the first one zlib-compressed)."""
    names, payload, name_off, data_off = b"", b"", {}, {}
    folders = sorted({p.split("/")[0] for p in files})
    for n in folders + [p.split("/")[1] for p in files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    for i, (path, blob) in enumerate(files.items()):
        stored = struct.pack(">I", len(blob)) + zlib.compress(blob) if i == 0 else blob
        data_off[path] = len(payload)
        payload += struct.pack(">I", len(stored)) + stored
    node = lambda name, flags, a, b: struct.pack(">IHII", name_off.get(name, 0), flags, a, b)  # noqa: E731
    tree = node("", 2, len(folders), 1)
    children = {f: [p for p in files if p.startswith(f + "/")] for f in folders}
    first = 1 + len(folders)
    for f in folders:
        tree += node(f, 2, len(children[f]), first)
        first += len(children[f])
    for f in folders:
        for p in children[f]:
            tree += node(p.split("/")[1], 1 if list(files).index(p) == 0 else 0, 0, data_off[p])
    head = 20
    offsets = struct.pack(">IIII", 1, head, head + len(tree), head + len(tree) + len(payload))
    return b"qres" + offsets + tree + payload + names


def test_rcc_reader_and_photo_names(rp):
    files = {"a/hammer1.webp": b"one" * 10, "a/README": b"Copyright: X\nLicense: Public Domain\nFiles:\nhammer1.webp\n",
             "b/measuringTape2.webp": b"two"}
    assert rp.rcc_files(_rcc(files)) == files
    with pytest.raises(rp.DatasetError):
        rp.rcc_files(b"nope")
    names = ("measuringTape2.webp", "screwDriver.webp", "kitten.webp", "windmill11.webp", "red_panda.webp")
    assert [rp.label_of(n) for n in names] == ["measuring_tape", "screwdriver", "cat", "windmill", "red_panda"]
    credit = rp.readme_attribution("Copyright: A\nSource: https://x/y\nLicense: Public domain\nFiles: bee.webp\n\n"
                                   "Copyright: B\nLicense: CC0-1.0\nFiles:\nscreDriver.webp\nhammer1.webp\n")
    assert credit["bee.webp"] == {"copyright": "A", "licence": "public-domain", "source": "https://x/y"}
    assert credit["screwDriver.webp"]["licence"] == credit["hammer1.webp"]["licence"] == "CC0-1.0"


def test_scratch_costumes_that_are_photographs_come_with_their_class_and_licence(rp, tmp_path):
    folder = tmp_path / rp.SCRATCH_COSTUMES
    for name in rp.SCRATCH_PHOTOS:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        _image("cat", (40, 30), "RGBA").save(folder / name)
    (folder / "Animals" / "cat1-a.gif").write_bytes(b"a drawn costume: never read")
    photos = rp.scratch_photos(tmp_path)
    assert len(photos) == len(rp.SCRATCH_PHOTOS) and {p.label for p in photos} >= {"cow", "bus", "ant", "car"}
    cow = next(p for p in photos if p.name == "cow1")
    assert cow.label == "cow" and cow.meta["licence"] == "CC-BY-SA-3.0" and cow.image.size == (40, 30)
    manifest = rp.write_benchmark(tmp_path / "out", photos, [rp.Picture("car", "set-car", _image("dog"))])
    assert manifest["scored_classes"] == {"car": {"photos": 3, "sketches": 1}}  # the rest are distractors
