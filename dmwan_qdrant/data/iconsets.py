"""Icon sets from the npm registry (``@iconify-json/*``): fetched, rendered, and named as classes.

Several designers ship the same named icons twice: as line drawings and as coloured pictures
(Streamline's line and colour families, IconPark's outline and multi-colour sets, Microsoft's
Fluent regular and colour icons). A line drawing and a coloured picture of one name are a
sketch-photo pair. Packages are fetched once with ``npm pack`` into a cache folder and their
SVGs rendered with CairoSVG (``pip install cairosvg``, the ``bench`` extra).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DatasetError

if TYPE_CHECKING:
    from PIL import Image

#: Where fetched packages are kept.
CACHE = Path.home() / ".cache" / "dmwan-qdrant" / "npm"

#: Style suffixes that name a rendering of an icon, not a different thing.
_STYLE = re.compile(r"-(flat|color|colour|remix|solid|bold|duo|duotone|regular|filled|light|outline|line)$")
_SIZE = re.compile(r"-(\d+)$")


def fetch(spec: str, cache: Path = CACHE) -> dict:
    """The icon set of the npm package ``spec`` (``name@version``; its ``icons.json``), packed
    once into ``cache``.

    Raises:
        DatasetError: npm is missing or cannot fetch the package.
    """
    cache.mkdir(parents=True, exist_ok=True)
    stem = spec.lstrip("@").replace("/", "-").replace("@", "-")
    tgz = cache / f"{stem}.tgz"
    if not tgz.exists():
        try:
            out = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(cache)],
                                 capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise DatasetError(f"npm is needed to fetch {spec} (install Node.js and npm)") from None
        if out.returncode != 0:
            last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
            raise DatasetError(f"npm pack {spec} failed: {last}")
        (cache / out.stdout.strip().splitlines()[-1]).rename(tgz)
    with tarfile.open(tgz) as tar:
        icon_set = json.load(tar.extractfile("package/icons.json"))
        if "info" not in icon_set and "package/info.json" in tar.getnames():
            icon_set["info"] = json.load(tar.extractfile("package/info.json"))
    return icon_set


def licence_of(icon_set: dict) -> str:
    """The set's licence as its package's ``info.json`` gives it (``"CC BY 4.0"``), or ``"?"``."""
    licence = icon_set.get("info", {}).get("license", {})
    return str(licence.get("title") or licence.get("spdx") or "?")


def icon_svg(icon_set: dict, name: str) -> str:
    """A standalone SVG document of one icon (black where the set draws in ``currentColor``).
    Aliases resolve to their parent icon."""
    icons, aliases = icon_set["icons"], icon_set.get("aliases", {})
    seen = set()
    while name not in icons and name in aliases and name not in seen:
        seen.add(name)
        name = aliases[name]["parent"]
    icon = icons[name]
    w = icon.get("width", icon_set.get("width", 16))
    h = icon.get("height", icon_set.get("height", 16))
    body = icon["body"].replace("currentColor", "#000")
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}">{body}</svg>'


def render(svg: str, size: int, margin: float = 0.1) -> "Image.Image":
    """The SVG drawn at ``size`` px on white, with a white margin (a photo's or sketch's border)."""
    import cairosvg
    from PIL import Image

    inner = int(round(size * (1 - 2 * margin)))
    png = cairosvg.svg2png(bytestring=svg.encode(), output_width=inner, output_height=inner)
    icon = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    offset = (size - inner) // 2
    canvas.paste(icon, (offset, offset), icon)
    return canvas


def class_name(icon: str) -> str:
    """A folder name for an icon (letters, digits and '_'), as it is spelled in its set."""
    return re.sub(r"[^a-z0-9]+", "_", icon.lower()).strip("_")


def concept(icon: str) -> str:
    """The thing an icon name names, so that one thing is one class across sets and styles:
    style and size suffixes and trailing variant numbers dropped (``truck-2`` and ``truck-flat``
    are ``truck``; ``add-circle-24-regular`` is ``add_circle``)."""
    name = icon.lower()
    for _ in range(3):
        name = _SIZE.sub("", _STYLE.sub("", name))
    return class_name(name) or class_name(icon)
