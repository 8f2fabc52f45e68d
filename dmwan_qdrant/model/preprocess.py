"""Image preprocessing that travels with the weights (size, mean, std) for both domains."""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from .augment import random_resized_crop, strong_photo, strong_sketch
from .config import ModelConfig
from .imageprep import channel_array, normalized_array, pad_to_square, resize_center_crop

PHOTO = 0
SKETCH = 1
DOMAINS = {"photo": PHOTO, "sketch": SKETCH}

class ToNormalizedTensor:
    """PIL RGB image -> float tensor (3, H, W), scaled to [0, 1] then normalised by mean and std
    (`dmwan_qdrant.model.imageprep.normalized_array`, the ONNX path's numbers, as a tensor)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean, self.std = channel_array(mean), channel_array(std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(normalized_array(image, self.mean, self.std))


class Preprocess:
    """One domain's preprocessing: a few PIL steps, then the tensor conversion (picklable)."""

    def __init__(self, size: int, domain: str, train: bool, mean, std, augment: str = "light") -> None:
        self.size, self.domain, self.train, self.augment = size, domain, train, augment
        self.to_tensor = ToNormalizedTensor(tuple(mean), tuple(std))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if self.domain == "sketch":
            image = pad_to_square(image)
        if self.train and self.augment == "strong":
            image = (strong_sketch if self.domain == "sketch" else strong_photo)(image.convert("RGB"), self.size)
        elif self.train:
            image = random_resized_crop(image, self.size)
            if float(torch.rand(1)) < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            image = resize_center_crop(image, self.size)
        return self.to_tensor(image)

    def __repr__(self) -> str:
        return f"Preprocess(size={self.size}, domain={self.domain!r}, train={self.train}, augment={self.augment!r})"


def build_transform(config: ModelConfig, domain: str, train: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalised float tensor (3, S, S) for ``domain`` ("photo" or "sketch").

    Photos are resized on the short side and centre-cropped (CLIP's convention); sketches are
    padded to a square first so no stroke is cut off. Training adds a mild random resized crop and
    horizontal flip, which keep the object whole and its class unchanged. Plain PIL and torch:
    several times faster per image than composed torchvision transforms, and importing it does
    not pull torchvision into ``dmwan query``'s start-up.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}: expected one of {sorted(DOMAINS)}")
    return Preprocess(config.image_size, domain, train, config.mean, config.std, config.augment)


def preprocessing_record(config: ModelConfig) -> dict:
    """What a reader of a bundle needs to preprocess images like training did."""
    return {
        "image_size": config.image_size,
        "mean": list(config.mean),
        "std": list(config.std),
        "photo": "resize short side, centre crop",
        "sketch": "pad to square with white, resize",
    }
