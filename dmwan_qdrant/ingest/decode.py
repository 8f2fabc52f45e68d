"""Reading one photo file for ingest: hash, decode, preprocess; a bad file becomes an error marker.

`decode_photo` is the one decoder of both ingest paths: the single-process run calls it in
DataLoader workers or, with the ONNX runtime and no torch, a process pool (`PhotoFiles`), the
Ray Data pipeline in CPU tasks. Errors are returned, not raised: one bad file must never stop a
run. Importing this module loads no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DmwanError, ImageError
from ..imageio import load_image, photo_input_size, source_size
from ..point_ids import sha256_file

FileEntry = tuple[str, int, int]
"""A file to read, as the plan found it: ``(path, size, mtime_ns)``."""


def decode_photo(entry: FileEntry, transform: Callable, max_pixels: int) -> dict[str, Any]:
    """Hash, decode and preprocess one file.

    Returns a dict with ``path``, ``size``, ``mtime`` (seconds), ``mtime_ns`` and either
    ``content_hash``, ``width``, ``height`` and ``tensor`` (the preprocessed image), or ``error``
    (the reason, without the path).
    """
    path, size, mtime_ns = entry
    # mtime_ns (an exact integer) is what the unchanged check compares: engines round floats.
    item: dict[str, Any] = {"path": path, "size": size, "mtime": mtime_ns / 1e9, "mtime_ns": mtime_ns}
    try:
        try:
            item["content_hash"] = sha256_file(path)
        except OSError as e:  # gone since the walk, permission denied, I/O error
            raise ImageError(f"{path}: {(e.strerror or str(e)).lower()}") from None
        # A large JPEG decodes at a reduced scale that still keeps twice the model's input size.
        image = load_image(path, max_pixels=max_pixels, min_side=photo_input_size(transform))
        item["width"], item["height"] = source_size(image)
        item["tensor"] = transform(image)
    except ImageError as e:
        msg = str(e)
        item["error"] = msg[len(path) + 2 :] if msg.startswith(path + ": ") else msg
    except DmwanError:  # an Interrupted raised here by a signal handler stops the run
        raise
    except Exception as e:  # noqa: BLE001 - a decoder bug on one file must not stop the run
        item["error"] = f"{type(e).__name__}: {e}"
    return item


class PhotoFiles:
    """The files to (re)read, as a map-style dataset (a DataLoader's, or `pool_batches`'s): each
    item is `decode_photo`'s dict."""

    def __init__(self, files: list[FileEntry], transform: Callable, max_pixels: int) -> None:
        self.files = files
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return decode_photo(self.files[i], self.transform, self.max_pixels)


def collate(items: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """A batch: the stacked images of the good items (in order; a torch tensor from a torch
    transform, a numpy array from the ONNX runtime's), and every item without its image."""
    good = [it.pop("tensor") for it in items if "tensor" in it]
    if not good:
        return None, items
    if isinstance(good[0], np.ndarray):
        return np.stack(good), items
    import torch

    return torch.stack(good), items
