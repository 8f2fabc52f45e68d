"""The photos behind search results, by point id: the file, or a JPEG thumbnail of it.

The file to read is the path stored in the point's payload at ingest, never a path from the
request, and only while it is still the file that was ingested (same size and modification
time): a path swapped for another file afterwards is refused, so nothing but the collection's own
photos can be read through a server.
"""

from __future__ import annotations

import io
import mimetypes
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from dmwan_qdrant.errors import CollectionNotFoundError
from dmwan_qdrant.imageio import is_image_path, load_image

THUMBNAIL_SIZES = (16, 1024)
"""Smallest and largest thumbnail side a request may ask for."""


def photo_file(payload: dict[str, Any], collection: str, point_id: str) -> Path:
    """The file a point was ingested from, checked to be still that file.

    Raises:
        CollectionNotFoundError: no path stored, the file is gone, or it changed since ingest.
    """
    raw = payload.get("path")
    if not raw:
        raise CollectionNotFoundError(f"point {point_id} of '{collection}' stores no photo path")
    path = Path(str(raw))
    try:
        st = path.stat()
    except OSError:
        raise CollectionNotFoundError(f"the photo of point {point_id} ({path.name}) is gone from disk") from None
    if not path.is_file() or not is_image_path(path):
        raise CollectionNotFoundError(f"the photo of point {point_id} is not an image file")
    size, mtime = payload.get("size"), payload.get("mtime_ns")
    if (size is not None and st.st_size != size) or (mtime is not None and st.st_mtime_ns != mtime):
        raise CollectionNotFoundError(
            f"the photo of point {point_id} ({path.name}) changed on disk since it was ingested; "
            f"run `dmwan ingest` on its folder again"
        )
    return path


def media_type(path: Path) -> str:
    """The Content-Type of an image file."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class ThumbnailCache:
    """JPEG thumbnails, made on first request and kept (least recently used out).

    Thread-safe: thumbnails are made on worker threads.

    Args:
        capacity: most thumbnails kept.
    """

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, size: int) -> bytes:
        """The JPEG thumbnail of ``path``, its longest side ``size`` pixels (never enlarged).

        Raises:
            ImageError: the photo cannot be decoded.
        """
        st = os.stat(path)
        key = (str(path), st.st_mtime_ns, st.st_size, size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        image = load_image(path)
        image.thumbnail((size, size))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85)
        data = buf.getvalue()
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return data
