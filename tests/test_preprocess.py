"""Preprocessing: plain PIL and torch, equal to the torchvision pipeline it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dmwan_qdrant.model import get_preset
from dmwan_qdrant.model.preprocess import build_transform


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(320, 240), (200, 333), (224, 224), (50, 80)])
def test_eval_photo_transform_matches_torchvision(size):
    from torchvision.transforms import v2 as T

    cfg = get_preset("vit_b16")
    image = _image(*size)
    reference = T.Compose([
        T.Resize(cfg.image_size, antialias=True), T.CenterCrop(cfg.image_size),
        T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(list(cfg.mean), list(cfg.std)),
    ])(image)
    ours = build_transform(cfg, "photo")(image)
    assert ours.shape == (3, cfg.image_size, cfg.image_size)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_sketch_is_padded_not_cropped():
    cfg = get_preset("tiny")
    image = Image.new("RGB", (200, 100), "white")
    image.paste((0, 0, 0), (0, 40, 4, 60))  # a stroke at the far left edge
    out = build_transform(cfg, "sketch")(image)
    # the stroke survives (a centre crop of the wide image would cut it off)
    assert float(out[:, :, :2].min()) < -0.5


def test_train_transform_is_reproducible_under_a_seed_and_varies_without():
    cfg = get_preset("tiny")
    tr = build_transform(cfg, "photo", train=True)
    image = _image(96, 80)
    torch.manual_seed(3)
    a = tr(image)
    torch.manual_seed(3)
    b = tr(image)
    assert torch.equal(a, b)
    outs = [tr(image) for _ in range(8)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    assert all(o.shape == (3, cfg.image_size, cfg.image_size) for o in outs)


def test_unknown_domain_is_refused():
    with pytest.raises(ValueError, match="unknown domain"):
        build_transform(get_preset("tiny"), "painting")
