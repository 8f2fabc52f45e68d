"""Reading user images robustly: EXIF orientation, mode normalisation, bomb protection.

A caller that will shrink the image anyway (a model's preprocessing) can pass ``min_side``: a
JPEG is then decoded at a reduced scale (libjpeg's 1/2, 1/4 or 1/8 DCT scaling, Pillow's
`Image.draft`) that still keeps ``DRAFT_MARGIN`` times that many pixels on the short side, which
is several times cheaper than a full decode of a large photo and embeds the same.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLargeError

#: File suffixes treated as images when walking folders.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
ACCEPTED_FORMATS = "JPEG, PNG, WebP, BMP, GIF or TIFF"
"""The formats of `IMAGE_SUFFIXES`, as an error names them."""

#: Largest image accepted, in pixels; larger ones are refused as decompression bombs.
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default warning threshold

#: A drafted JPEG keeps at least this many times the caller's ``min_side`` on its short side, so
#: that the caller's antialiased resize still does half the shrinking or more. Measured against
#: the full decode (BENCHMARKS.md, "Ingest throughput"): at 2 a trained model's embeddings of
#: real photos keep a cosine >= 0.997 with the full decode's, closer than the full decode
#: shifted by one pixel (0.995); at 1 they fall to 0.981.
DRAFT_MARGIN = 2

# EXIF orientations (5-8) that turn the stored image a quarter turn: width and height swap.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})

# Truncated files must fail, not decode to half a picture silently.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_path(path: Path) -> bool:
    """Whether ``path`` has a suffix of a supported image format."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Normalise any PIL mode (palette, alpha, grayscale, CMYK, 16-bit) to 8-bit RGB.

    Transparent pixels are composited over ``background`` (white, as sketches expect).
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float grayscale: rescale to 8 bits by the real value range.
        import numpy as np

        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype("uint8"), mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def load_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS, min_side: int | None = None) -> Image.Image:
    """Open an image file as upright 8-bit RGB.

    Honours EXIF orientation, takes the first frame of animations, and refuses files that are
    empty, truncated, not images, or larger than ``max_pixels`` (the size in the file's header,
    whatever scale it is then decoded at).

    Args:
        min_side: the short side, in pixels, the caller will resize the image to (see
            `photo_input_size`). A JPEG much larger than that is decoded at a reduced scale that
            keeps at least ``DRAFT_MARGIN * min_side`` pixels on its short side; the returned
            image is then smaller than the file, and ``image.info["source_size"]`` holds the
            file's upright size. ``None`` (the default) always decodes at full size; other
            formats are always decoded at full size.

    Raises:
        ImageError: with a one-line reason naming the file.
    """
    path = Path(path)
    with file_errors(path):
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file")
        return _decode(path, str(path), max_pixels, min_side)


def photo_input_size(model: Any) -> int | None:
    """The short side a model's photo preprocessing resizes to: the ``min_side`` to decode with.

    ``model`` is a DMWAN model or its photo transform (``model.transform("photo")``), which both
    carry the size the weights were trained at (48 for the ``tiny`` preset, 224 for ``vit_b16``).
    None for anything else (a custom transform), which `load_image` decodes at full size.
    """
    config = getattr(model, "config", None)
    size = getattr(config, "image_size", None) if config is not None else getattr(model, "size", None)
    return int(size) if isinstance(size, int) else None


def source_size(image: Image.Image) -> tuple[int, int]:
    """The upright width and height of the file ``image`` was decoded from (drafted or not)."""
    return image.info.get("source_size", image.size)


@contextlib.contextmanager
def file_errors(path: str | Path) -> Iterator[None]:
    """Turn a missing, folder or unreadable ``path`` into an `ImageError` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None


def decode_image(
    data: bytes, name: str = "image", max_pixels: int = MAX_IMAGE_PIXELS, min_side: int | None = None
) -> Image.Image:
    """`load_image` for bytes in memory (an upload); ``name`` is what the error messages call it.

    Raises:
        ImageError: empty, not an image, truncated, or larger than ``max_pixels``
            (`ImageTooLargeError`).
    """
    if not data:
        raise ImageError(f"{name}: empty file")
    return _decode(io.BytesIO(data), name, max_pixels, min_side)


def _draft(im: Image.Image, min_side: int | None) -> tuple[int, int] | None:
    """Ask a JPEG decoder for the smallest scale that keeps ``DRAFT_MARGIN * min_side`` pixels.

    Returns the upright full size when the image will come out smaller, else None. Pillow picks
    a scale of 1/2, 1/4 or 1/8 only when both sides stay at or above the requested square's.
    """
    if min_side is None or im.format not in ("JPEG", "MPO"):
        return None
    full = im.size
    keep = DRAFT_MARGIN * max(1, int(min_side))
    if min(full) < 2 * keep or im.draft("RGB", (keep, keep)) is None or im.size == full:
        return None
    w, h = full
    return (h, w) if im.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS else (w, h)


def _decode(source: Path | io.BytesIO, name: str, max_pixels: int, min_side: int | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageTooLargeError(
                        f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels} (decompression bomb?)"
                    )
                im.seek(0)
                drafted_from = _draft(im, min_side)
                im.load()
                im = ImageOps.exif_transpose(im) or im
                rgb = to_rgb(im)
                if drafted_from is not None:
                    rgb.info["source_size"] = drafted_from
                return rgb
    except (ImageError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (accepted: {ACCEPTED_FORMATS})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{name}: decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: unreadable image ({exc})") from None
