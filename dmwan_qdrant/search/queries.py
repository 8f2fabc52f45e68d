"""What a query can be: image files, a folder of them, standard input (``-``), an http(s) URL.

`read_query_sources` turns what the user typed into named bytes, in the order given (a folder's
images sorted by path), so that a local search and a search through `dmwan serve` read the same
images. Decoding stays with `dmwan_qdrant.imageio.decode_image` (and its limits).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ImageError, UsageError
from ..imageio import IMAGE_SUFFIXES, decode_image, file_errors, is_image_path

#: Largest query image read from standard input or a URL (files are limited in pixels only).
MAX_QUERY_BYTES = 32 * 1024 * 1024
#: Seconds a URL may take to answer.
URL_TIMEOUT_S = 20.0
STDIN = "-"


@dataclass(frozen=True)
class QuerySource:
    """One query image: what the user called it (a path, ``-``, a URL) and its encoded bytes."""

    name: str
    data: bytes

    def decode(self):  # -> PIL.Image.Image
        """The image as upright RGB (see `dmwan_qdrant.imageio.decode_image`)."""
        return decode_image(self.data, self.name)


def is_url(spec: str) -> bool:
    """Whether ``spec`` is an http(s) URL rather than a file name."""
    return spec.lower().startswith(("http://", "https://"))


def read_query_sources(specs: Sequence[str | Path], stdin: BinaryIO | None = None) -> list[QuerySource]:
    """The query images named by ``specs``, in order.

    Each spec is an image file, a folder (its images, recursively, sorted by path), ``-`` (one
    image on standard input) or an http(s) URL.

    Raises:
        ImageError: a file, folder or URL that gives no image (one line naming it).
        UsageError: ``-`` given twice.
    """
    if sum(str(s) == STDIN for s in specs) > 1:
        raise UsageError("standard input (-) can be read once per query command")
    out: list[QuerySource] = []
    for spec in specs:
        text = str(spec)
        if text == STDIN:
            out.append(QuerySource("<stdin>", _read_limited(stdin or sys.stdin.buffer, "<stdin>")))
        elif is_url(text):
            out.append(QuerySource(text, fetch_url(text)))
        elif Path(text).expanduser().is_dir():
            out += [QuerySource(str(p), _read_file(p)) for p in folder_images(Path(text).expanduser())]
        else:
            out.append(QuerySource(text, _read_file(Path(text).expanduser())))
    return out


def folder_images(folder: Path) -> list[Path]:
    """The image files under ``folder`` (hidden ones skipped), sorted by path.

    Raises:
        ImageError: none there (naming the suffixes read).
    """
    found = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and is_image_path(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not found:
        raise ImageError(f"{folder}: no image files in this folder (the suffixes read: {' '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def _read_file(path: Path) -> bytes:
    with file_errors(path):
        return path.read_bytes()


def _read_limited(stream: BinaryIO, name: str) -> bytes:
    data = stream.read(MAX_QUERY_BYTES + 1)
    if len(data) > MAX_QUERY_BYTES:
        raise ImageError(f"{name}: larger than {MAX_QUERY_BYTES // (1024 * 1024)} MiB")
    if not data:
        raise ImageError(f"{name}: empty (pipe an image in, e.g. `cat sketch.png | dmwan query - ...`)")
    return data


def fetch_url(url: str, timeout: float = URL_TIMEOUT_S) -> bytes:
    """The body of an http(s) URL, at most `MAX_QUERY_BYTES`.

    Raises:
        ImageError: the URL cannot be fetched (one line: the HTTP status or the network error).
    """
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "dmwan-qdrant", "Accept": "image/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return _read_limited(response, url)
    except urllib.error.HTTPError as exc:
        raise ImageError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ImageError(f"{url}: cannot be fetched ({exc.reason})") from None
    except (TimeoutError, OSError) as exc:
        raise ImageError(f"{url}: cannot be fetched ({type(exc).__name__}: {exc})") from None
