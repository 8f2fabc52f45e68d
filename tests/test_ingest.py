"""Ingest into the embedded store: incremental, idempotent, duplicate/rename aware, robust to bad
files and to crashes."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dmwan_qdrant.encoder import load_bundle
from dmwan_qdrant.errors import ModelMismatchError, UsageError
from dmwan_qdrant.ingest import IngestReport, ingest, point_id, walk_images
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.store import PhotoPoint, open_store

SHAPES = ("circle", "square", "triangle")
COLORS = {"circle": (220, 40, 40), "square": (40, 60, 220), "triangle": (30, 170, 60)}


def draw_photo(shape: str, seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A noisy background with one coloured shape, jittered by ``seed``."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(150, 255, (size[1], size[0], 3), dtype=np.uint8))
    d = ImageDraw.Draw(img)
    x, y, r = int(rng.integers(14, 34)), int(rng.integers(14, 26)), int(rng.integers(8, 13))
    box = (x - r, y - r, x + r, y + r)
    if shape == "circle":
        d.ellipse(box, fill=COLORS[shape])
    elif shape == "square":
        d.rectangle(box, fill=COLORS[shape])
    else:
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=COLORS[shape])
    return img


def make_photos(root: Path, per_class: int = 4, seed: int = 0) -> list[Path]:
    """``root/<shape>/<i>.jpg`` photos, one folder per class; returns the files, sorted."""
    files = []
    for c, shape in enumerate(SHAPES):
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            f = root / shape / f"{i:02d}.jpg"
            draw_photo(shape, seed * 1000 + c * 100 + i).save(f, quality=90)
            files.append(f)
    return sorted(files)


def png_bomb(path: Path, side: int = 100_000) -> None:
    """A valid 1x1 PNG whose header claims ``side`` x ``side`` pixels."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 4  # signature, then the IHDR chunk's length field
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", side, side)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 4 + 13]))
    data[ihdr + 4 + 13 : ihdr + 4 + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def make_bad_files(folder: Path) -> dict[str, str]:
    """Bad files of every kind; returns name -> a word its failure reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not a picture\n")
    draw_photo("circle", 99, (64, 64)).save(folder / "cut.png")
    data = (folder / "cut.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    png_bomb(folder / "bomb.png")
    os.mkfifo(folder / "pipe.png")
    return {"empty.jpg": "empty", "notes.jpg": "not an image", "cut.png": "", "bomb.png": "bomb",
            "pipe.png": "regular"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    bundle = save_model(create_model("tiny", seed=0), tmp_path_factory.mktemp("bundle") / "tiny")
    return load_bundle(bundle, device="cpu")


@pytest.fixture
def store(tmp_path):
    with open_store(path=tmp_path / "store") as st:
        yield st


def payloads(store, name="photos") -> dict[str, dict]:
    return dict(store.scroll_payloads(name))


def run(paths, store, model, **kw) -> IngestReport:
    kw.setdefault("num_workers", 0)
    return ingest(paths if isinstance(paths, list) else [paths], store, "photos", model, **kw)


def test_ingest_then_rerun_adds_nothing(tmp_path, store, model):
    files = make_photos(tmp_path / "photos")
    first = run(tmp_path / "photos", store, model, label_from_folder=True)
    assert (first.found, first.added, first.failed) == (len(files), len(files), [])
    stored = payloads(store)
    assert len(stored) == len(files)
    p = next(p for p in stored.values() if p["path"] == str(files[0]))
    assert p["label"] == files[0].parent.name and Path(p["path"]).is_absolute()
    assert (p["width"], p["height"], p["size"]) == (48, 40, files[0].stat().st_size)
    assert point_id(p["content_hash"]) in stored
    record = store.get_model_record("photos")
    assert record["fingerprint"] == model.fingerprint and record["bundle"] == str(model.bundle_path)

    again = run(tmp_path / "photos", store, model, label_from_folder=True)
    assert (again.added, again.updated, again.unchanged, again.decoded) == (0, 0, len(files), 0)
    assert store.count("photos") == len(files)


def test_duplicate_and_renamed_files_add_no_point(tmp_path, store, model):
    files = make_photos(tmp_path / "photos")
    run(tmp_path / "photos", store, model)
    shutil.copy(files[0], tmp_path / "photos" / "copy.jpg")
    renamed = files[1].with_name("renamed.jpg")
    files[1].rename(renamed)
    r = run(tmp_path / "photos", store, model)
    assert (r.added, r.duplicates, r.updated) == (0, 1, 1)
    paths = {p["path"] for p in payloads(store).values()}
    assert str(renamed) in paths and str(files[1]) not in paths and str(files[0]) in paths
    assert store.count("photos") == len(files)
    # A touched file (new mtime, same bytes) is rewritten once, then unchanged again.
    os.utime(files[2], ns=(1_000_000_000, 1_000_000_000))
    assert run(tmp_path / "photos", store, model).updated == 1
    r = run(tmp_path / "photos", store, model)
    assert (r.added, r.updated, r.duplicates) == (0, 0, 1) and store.count("photos") == len(files)


def test_modified_file_replaces_its_point(tmp_path, store, model):
    files = make_photos(tmp_path / "photos")
    run(tmp_path / "photos", store, model)
    old = {p["path"]: pid for pid, p in payloads(store).items()}[str(files[0])]
    draw_photo("square", 12345).save(files[0])
    r = run(tmp_path / "photos", store, model)
    assert (r.added, r.pruned) == (1, 1)
    stored = payloads(store)
    assert old not in stored and len(stored) == len(files)
    assert [p["path"] for p in stored.values()].count(str(files[0])) == 1


def test_prune_deletes_gone_files_under_the_given_paths_only(tmp_path, store, model):
    a, b = make_photos(tmp_path / "a", per_class=2), make_photos(tmp_path / "b", per_class=2, seed=1)
    run([tmp_path / "a", tmp_path / "b"], store, model)
    a[0].unlink()
    b[0].unlink()
    assert run(tmp_path / "a", store, model).pruned == 0  # without --prune nothing goes
    r = run(tmp_path / "a", store, model, prune=True)
    assert r.pruned == 1
    paths = {p["path"] for p in payloads(store).values()}
    assert str(a[0]) not in paths and str(b[0]) in paths  # b was not asked about
    assert store.count("photos") == len(a) + len(b) - 1


def test_bad_files_are_reported_and_good_ones_stored(tmp_path, store, model):
    files = make_photos(tmp_path / "photos", per_class=3)
    bad = make_bad_files(tmp_path / "photos" / "bad")
    extra = tmp_path / "photos" / "formats"
    extra.mkdir()
    frames = [draw_photo(s, 7) for s in SHAPES]
    frames[0].save(extra / "anim.gif", save_all=True, append_images=frames[1:])
    draw_photo("circle", 8).save(extra / "a.tiff")
    draw_photo("square", 9).save(extra / "b.webp")
    draw_photo("triangle", 10).save(extra / "c.bmp")
    draw_photo("circle", 11).convert("RGBA").save(extra / "d.png")
    good = len(files) + 5
    # Two workers and small batches: bad files travel through the DataLoader's worker processes.
    r = run(tmp_path / "photos", store, model, batch_size=4, num_workers=2)
    assert r.added == good and store.count("photos") == good
    reasons = {Path(p).name: why for p, why in r.failed}
    assert set(reasons) == set(bad)
    for name, word in bad.items():
        assert word in reasons[name], (name, reasons[name])
    # Bad files are reported again on every run, and never stored.
    r = run(tmp_path / "photos", store, model)
    assert len(r.failed) == len(bad) and r.unchanged == good and store.count("photos") == good


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_reported(tmp_path, store, model):
    make_photos(tmp_path / "photos", per_class=1)
    locked = tmp_path / "photos" / "locked.jpg"
    draw_photo("circle", 1).save(locked)
    locked.chmod(0)
    r = run(tmp_path / "photos", store, model)
    assert r.failed == [(str(locked), "permission denied")] and r.added == 3


def test_crash_after_first_batch_then_rerun_stores_each_good_file_once(tmp_path, store, model):
    files = make_photos(tmp_path / "photos", per_class=4)
    make_bad_files(tmp_path / "photos" / "bad")
    shutil.copy(files[3], tmp_path / "photos" / "dup.jpg")

    def crash(p):
        if p.decoded >= 4:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run(tmp_path / "photos", store, model, batch_size=4, num_workers=1, progress=crash)
    assert store.count("photos") == 4
    r = run(tmp_path / "photos", store, model, batch_size=4)
    stored = payloads(store)
    assert len(stored) == len(files) == r.added + r.unchanged
    assert sorted(p["path"] for p in stored.values()) == sorted(map(str, files))


def test_stale_version_left_by_a_crash_is_removed(tmp_path, store, model):
    files = make_photos(tmp_path / "photos", per_class=1)
    run(tmp_path / "photos", store, model)
    # As if killed after writing a file's new version and before deleting its old one.
    payload = dict(next(p for p in payloads(store).values() if p["path"] == str(files[0])))
    payload.update(content_hash="ab" * 32, size=1, mtime_ns=1)
    dim, tok = model.config.embed_dim, model.config.token_dim
    store.upsert("photos", [PhotoPoint(point_id("ab" * 32), np.eye(dim)[0], np.eye(tok)[:2], payload)])
    assert store.count("photos") == len(files) + 1
    r = run(tmp_path / "photos", store, model)
    assert (r.unchanged, r.pruned) == (len(files), 1) and store.count("photos") == len(files)


def test_another_model_is_refused(tmp_path, store, model):
    make_photos(tmp_path / "photos", per_class=1)
    run(tmp_path / "photos", store, model)
    other = create_model("tiny", seed=1)
    with pytest.raises(ModelMismatchError) as err:
        run(tmp_path / "photos", store, other)
    assert model.fingerprint in str(err.value) and other.fingerprint in str(err.value)


def test_walk_is_sorted_recursive_and_skips_hidden(tmp_path):
    for rel in ["b/2.png", "b/1.jpg", "a.JPG", ".hidden/x.png", "c/.y.png", "c/readme.txt", "c/d/e.webp"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in walk_images([tmp_path, tmp_path / "a.JPG"])]
    assert found == ["a.JPG", "b/1.jpg", "b/2.png", "c/d/e.webp"]
    with pytest.raises(UsageError):
        list(walk_images([tmp_path / "missing"]))


def test_missing_path_creates_nothing(tmp_path, store, model):
    with pytest.raises(UsageError, match="no such file"):
        run(tmp_path / "typo", store, model)
    assert not store.collection_exists("photos")
    with pytest.raises(UsageError):
        run(tmp_path, store, model, batch_size=0)
