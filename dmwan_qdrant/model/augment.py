"""Strong training augmentation for small real datasets (`ModelConfig.augment` = "strong").

With one sketch per class, a model sees the same drawing every epoch and learns it by heart.
These augmentations make each view a plausible other drawing, or another photo, of the class:

- sketches: a random crop of most of the drawing, a flip, a small rotation, shear and scale
  (white fill), and strokes made thicker or thinner (a min or max filter on the ink);
- photos: a random crop, a flip, colour jitter (brightness, contrast, saturation), and sometimes
  greyscale or an edge map (the photo's outlines as dark lines on white: what a sketch keeps).

Everything draws from torch's global generator, like `random_resized_crop`, so a
dataset that seeds it per item stays reproducible with any number of loader workers.
"""

from __future__ import annotations

import math

import torch
from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps

from .imageprep import RESAMPLE

#: Chances and ranges (the probability of each step, and how far it goes).
SKETCH_CROP = (0.6, 1.0)
SKETCH_ROTATE_DEG = 12.0
SKETCH_SHEAR = 0.15
SKETCH_SCALE = (0.85, 1.1)
SKETCH_STROKE_P = 0.5
PHOTO_CROP = (0.5, 1.0)
PHOTO_JITTER = 0.35
PHOTO_GREY_P = 0.15
PHOTO_EDGES_P = 0.15


def random_resized_crop(
    image: Image.Image, size: int, scale: tuple[float, float] = (0.75, 1.0), ratio: tuple[float, float] = (0.9, 1.1)
) -> Image.Image:
    """A random box of ``scale`` of the area and ``ratio`` aspect, resized to ``size``.

    Draws from torch's global generator, so a caller can make it reproducible with
    ``torch.manual_seed``. Falls back to the largest central box when no draw fits.
    """
    w, h = image.size
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1]))
        aspect = math.exp(float(torch.empty(1).uniform_(*log_ratio)))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            left = int(torch.randint(0, w - cw + 1, (1,)))
            top = int(torch.randint(0, h - ch + 1, (1,)))
            break
    else:
        aspect = w / h
        if aspect < ratio[0]:
            cw, ch = w, int(round(w / ratio[0]))
        elif aspect > ratio[1]:
            cw, ch = int(round(h * ratio[1])), h
        else:
            cw, ch = w, h
        left, top = (w - cw) // 2, (h - ch) // 2
    return image.resize((size, size), RESAMPLE, box=(left, top, left + cw, top + ch))


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(1).uniform_(low, high))


def _chance(p: float) -> bool:
    return float(torch.rand(1)) < p


def _affine(image: Image.Image) -> Image.Image:
    """A small rotation, shear and scale about the centre, filling with white."""
    w, h = image.size
    angle = math.radians(_uniform(-SKETCH_ROTATE_DEG, SKETCH_ROTATE_DEG))
    shear = _uniform(-SKETCH_SHEAR, SKETCH_SHEAR)
    scale = _uniform(*SKETCH_SCALE)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    # Inverse map (output -> input) about the centre, as PIL's affine transform takes it.
    a, b = cos, sin + shear * cos
    d, e = -sin, cos - shear * sin
    cx, cy = w / 2, h / 2
    c = cx - a * cx - b * cy
    f = cy - d * cx - e * cy
    return image.transform((w, h), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BILINEAR,
                           fillcolor=(255, 255, 255))


def _stroke(image: Image.Image) -> Image.Image:
    """Thicker strokes (a min filter spreads dark ink) or thinner ones (a max filter)."""
    size = 3
    return image.filter(ImageFilter.MinFilter(size) if _chance(0.6) else ImageFilter.MaxFilter(size))


def strong_sketch(image: Image.Image, size: int) -> Image.Image:
    """A training view of a sketch (already padded to a square)."""
    if _chance(SKETCH_STROKE_P):
        image = _stroke(image)
    image = _affine(image)
    image = random_resized_crop(image, size, scale=SKETCH_CROP, ratio=(0.8, 1.25))
    if _chance(0.5):
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def edge_map(image: Image.Image) -> Image.Image:
    """The photo's outlines as dark lines on white (RGB): the strongest edge over the three
    colour channels, so a border between two colours of the same brightness still shows."""
    edges = [channel.filter(ImageFilter.FIND_EDGES) for channel in image.convert("RGB").split()]
    strongest = ImageChops.lighter(ImageChops.lighter(edges[0], edges[1]), edges[2])
    return ImageOps.invert(ImageOps.autocontrast(strongest)).convert("RGB")


def strong_photo(image: Image.Image, size: int) -> Image.Image:
    """A training view of a photo."""
    image = random_resized_crop(image, size, scale=PHOTO_CROP, ratio=(0.75, 1.33))
    if _chance(0.5):
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    r = PHOTO_JITTER
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhance(image).enhance(_uniform(1 - r, 1 + r))
    if _chance(PHOTO_EDGES_P):
        return edge_map(image)
    if _chance(PHOTO_GREY_P):
        return image.convert("L").convert("RGB")
    return image


__all__ = ["edge_map", "strong_photo", "strong_sketch"]
