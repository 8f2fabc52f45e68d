"""Reading user images robustly: EXIF orientation, mode normalisation, bomb protection."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLargeError

#: File suffixes treated as images when walking folders.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

#: Largest image accepted, in pixels; larger ones are refused as decompression bombs.
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default warning threshold

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


def load_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image file as upright 8-bit RGB.

    Honours EXIF orientation, takes the first frame of animations, and refuses files that are
    empty, truncated, not images, or larger than ``max_pixels``.

    Raises:
        ImageError: with a one-line reason naming the file.
    """
    path = Path(path)
    with file_errors(path):
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file")
        return _decode(path, str(path), max_pixels)


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


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """`load_image` for bytes in memory (an upload); ``name`` is what the error messages call it.

    Raises:
        ImageError: empty, not an image, truncated, or larger than ``max_pixels``
            (`ImageTooLargeError`).
    """
    if not data:
        raise ImageError(f"{name}: empty file")
    return _decode(io.BytesIO(data), name, max_pixels)


def _decode(source: Path | io.BytesIO, name: str, max_pixels: int) -> Image.Image:
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
                im.load()
                im = ImageOps.exif_transpose(im) or im
                return to_rgb(im)
    except (ImageError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{name}: decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: unreadable image ({exc})") from None
