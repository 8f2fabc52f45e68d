"""Decoding a JPEG at a reduced scale (``min_side``): the caller's preprocessing sees the same
picture, the file's checks and orientation stay those of the full decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from dmwan_qdrant.errors import ImageError, ImageTooLargeError
from dmwan_qdrant.imageio import DRAFT_MARGIN, decode_image, load_image, photo_input_size, source_size
from dmwan_qdrant.model import create_model, get_preset
from dmwan_qdrant.model.preprocess import build_transform

TINY = get_preset("tiny").image_size  # 48


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A textured background with hard-edged shapes, like the ingest benchmark's photos."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(128, 40, (h, w, 3))
    img = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(w / 160))
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(h // 12, h // 4))
        d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return img


def _encode(image: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **save)
    return buf.getvalue()


def _jpeg(image: Image.Image, **save) -> bytes:
    return _encode(image, "JPEG", quality=90, **save)


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> tuple:
    path = tmp_path_factory.mktemp("draft") / "big.jpg"
    path.write_bytes(_jpeg(_photo(1600, 1200)))
    return path


@pytest.mark.parametrize("via", ["path", "bytes"])
def test_large_jpeg_is_drafted_and_preprocesses_like_the_full_decode(big_jpeg, via):
    read = (lambda **kw: load_image(big_jpeg, **kw)) if via == "path" else (
        lambda **kw: decode_image(big_jpeg.read_bytes(), "big.jpg", **kw))
    full, drafted = read(), read(min_side=TINY)
    assert full.size == (1600, 1200)
    assert DRAFT_MARGIN * TINY <= min(drafted.size) < min(full.size)  # 1/8 scale: 200x150
    assert drafted.mode == "RGB"
    assert source_size(drafted) == source_size(full) == (1600, 1200)
    transform = build_transform(get_preset("tiny"), "photo")
    a, b = transform(full), transform(drafted)
    # Inputs normalised to [-1, 1]: measured 0.016 at most and 0.001 on average here; the bounds
    # are 3x and 5x that. BENCHMARKS.md measures what drafting does to embeddings.
    assert float((a - b).abs().max()) < 0.05
    assert float((a - b).abs().mean()) < 0.005


def test_exif_rotated_jpeg_stays_upright_when_drafted(tmp_path):
    stored = Image.new("RGB", (1200, 800), (255, 0, 0))
    stored.paste((0, 0, 255), (600, 0, 1200, 800))  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": upright, red is on top
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_jpeg(stored, exif=exif.tobytes()))

    full, drafted = load_image(path), load_image(path, min_side=TINY)
    assert full.size == (800, 1200)
    assert drafted.size[0] < drafted.size[1] and min(drafted.size) >= DRAFT_MARGIN * TINY
    assert source_size(drafted) == (800, 1200)
    top, bottom = drafted.getpixel((drafted.width // 2, 5)), drafted.getpixel((drafted.width // 2, drafted.height - 5))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]
    shrunk = full.resize(drafted.size, Image.Resampling.BOX)
    assert np.abs(np.asarray(shrunk, dtype=int) - np.asarray(drafted, dtype=int)).mean() < 2


def test_grayscale_jpeg_comes_out_rgb_when_drafted(tmp_path):
    path = tmp_path / "gray.jpg"
    path.write_bytes(_jpeg(_photo(1200, 900).convert("L")))
    image = load_image(path, min_side=TINY)
    assert image.mode == "RGB" and min(image.size) >= DRAFT_MARGIN * TINY and image.size != (1200, 900)


@pytest.mark.parametrize("name, data", [
    ("big.png", lambda: _encode(_photo(1600, 1200), "PNG")),
    ("big.webp", lambda: _encode(_photo(1600, 1200), "WEBP")),
    ("small.jpg", lambda: _jpeg(_photo(320, 150))),  # 150 px < twice the draft's 2 x 48: no gain
])
def test_other_formats_and_small_jpegs_decode_at_full_size(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data())
    full, asked = load_image(path), load_image(path, min_side=TINY)
    assert asked.size == full.size and "source_size" not in asked.info
    assert np.array_equal(np.asarray(asked), np.asarray(full))
    assert source_size(asked) == full.size


def test_bomb_check_reads_the_header_size_not_the_drafted_one(big_jpeg):
    # 1600x1200 drafts to 200x150 = 30,000 pixels: a limit between the two must still refuse it.
    with pytest.raises(ImageTooLargeError, match="1600x1200 pixels exceeds the limit of 1000000"):
        load_image(big_jpeg, max_pixels=1_000_000, min_side=TINY)


def test_truncated_jpeg_fails_when_drafted(big_jpeg):
    data = big_jpeg.read_bytes()
    with pytest.raises(ImageError, match="cut.jpg: unreadable image"):
        decode_image(data[: len(data) // 2], "cut.jpg", min_side=TINY)


def test_photo_input_size_of_a_model_and_of_its_transform():
    model = create_model("tiny", seed=0)
    assert photo_input_size(model) == photo_input_size(model.transform("photo")) == TINY
    assert photo_input_size(lambda image: torch.zeros(3)) is None
