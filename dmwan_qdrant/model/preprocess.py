"""Image preprocessing that travels with the weights (size, mean, std) for both domains."""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2 as T

from .config import ModelConfig

PHOTO = 0
SKETCH = 1
DOMAINS = {"photo": PHOTO, "sketch": SKETCH}


def _pad_to_square(image: Image.Image) -> Image.Image:
    """Sketches keep their whole drawing: pad with white instead of cropping."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    return ImageOps.pad(image, (side, side), color=(255, 255, 255))


def build_transform(config: ModelConfig, domain: str, train: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalised float tensor (3, S, S) for ``domain`` ("photo" or "sketch").

    Photos are resized on the short side and centre-cropped (CLIP's convention); sketches are
    padded to a square first so no stroke is cut off. Training adds a mild random resized crop and
    horizontal flip, which keep the object whole and its class unchanged.
    """
    size = config.image_size
    steps: list[Callable] = []
    if domain == "sketch":
        steps.append(_pad_to_square)
    if train:
        steps += [T.RandomResizedCrop(size, scale=(0.75, 1.0), ratio=(0.9, 1.1), antialias=True), T.RandomHorizontalFlip()]
    else:
        steps += [T.Resize(size, antialias=True), T.CenterCrop(size)]
    steps += [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(list(config.mean), list(config.std))]
    return T.Compose(steps)


def preprocessing_record(config: ModelConfig) -> dict:
    """What a reader of a bundle needs to preprocess images like training did."""
    return {
        "image_size": config.image_size,
        "mean": list(config.mean),
        "std": list(config.std),
        "photo": "resize short side, centre crop",
        "sketch": "pad to square with white, resize",
    }
