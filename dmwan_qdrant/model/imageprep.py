"""Inference preprocessing in numpy and Pillow, and the CPU's forward-pass chunks: the one
definition both runtimes use.

The torch path (`dmwan_qdrant.model.preprocess`) wraps these arrays in tensors, the ONNX path
feeds them to onnxruntime as they are, so a photo or a sketch reaches either encoder as the same
numbers. Importing this module loads no torch.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# PIL resampling of every resize (PIL's bilinear filter is antialiased when it shrinks).
RESAMPLE = Image.Resampling.BILINEAR


def pad_to_square(image: Image.Image) -> Image.Image:
    """Sketches keep their whole drawing: pad with white instead of cropping."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    return ImageOps.pad(image, (side, side), color=(255, 255, 255))


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the short side to ``size``, then cut the central ``size`` x ``size`` square."""
    w, h = image.size
    if w <= h:
        ow, oh = size, int(size * h / w)
    else:
        ow, oh = int(size * w / h), size
    if (ow, oh) != (w, h):
        image = image.resize((ow, oh), RESAMPLE)
    left, top = int(round((ow - size) / 2.0)), int(round((oh - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def normalized_array(image: Image.Image, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """PIL image -> float32 array (3, H, W), scaled to [0, 1] then normalised by ``mean`` and
    ``std`` (float32 arrays of shape (3, 1, 1))."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1).astype(np.float32, order="C")
    array /= np.float32(255.0)
    array -= mean
    array /= std
    return array


def channel_array(values: tuple[float, ...] | list[float]) -> np.ndarray:
    """Per-channel statistics as the float32 (3, 1, 1) array `normalized_array` takes."""
    return np.asarray(values, dtype=np.float32).reshape(3, 1, 1)


class ArrayPreprocess:
    """One domain's inference preprocessing to a float32 array (3, S, S) (picklable).

    Photos are resized on the short side and centre-cropped; sketches are padded to a white
    square first, so no stroke is cut off.
    """

    def __init__(self, size: int, domain: str, mean, std) -> None:
        if domain not in ("photo", "sketch"):
            raise ValueError(f"unknown domain {domain!r}: expected 'photo' or 'sketch'")
        self.size, self.domain = int(size), domain
        self.mean, self.std = channel_array(mean), channel_array(std)

    def image(self, image: Image.Image) -> Image.Image:
        """The resized (and, for a sketch, padded) image, before the conversion to numbers."""
        if self.domain == "sketch":
            image = pad_to_square(image)
        return resize_center_crop(image, self.size)

    def __call__(self, image: Image.Image) -> np.ndarray:
        return normalized_array(self.image(image), self.mean, self.std)

    def __repr__(self) -> str:
        return f"ArrayPreprocess(size={self.size}, domain={self.domain!r})"


#: Pixels per forward pass on a CPU, in both runtimes: a batch of larger images runs in chunks of
#: about this many pixels, whose activations stay in the caches (on 2 cores, EfficientNet-Lite0
#: at 160 px through ONNX in chunks of 8: 294 images/s against 247 in one pass of 64; through
#: torch on one thread 115 against 61). Small images (the 48 px tiny preset: chunks of 88) run
#: whole, where a chunk's call would cost more than the cache saves. BENCHMARKS.md, "Runtimes".
CPU_CHUNK_PIXELS = 8 * 160 * 160


def cpu_chunk(image_size: int) -> int:
    """Images per forward pass on a CPU for images of ``image_size`` px (`CPU_CHUNK_PIXELS`)."""
    return max(1, CPU_CHUNK_PIXELS // (image_size * image_size))
