"""Sweet Home 3D's furniture catalogues: shaded 3D renderings of named things, as photos.

The Debian package ``sweethome3d-furniture`` ships five catalogues (``.sh3f`` zip files), each a
``PluginFurnitureCatalog.properties`` that names every piece (``name#N``, ``category#N``,
``icon#N``) beside its icon: a 128 px rendering of the piece's 3D model, lit and shaded, on a
transparent background, and a ``LICENSE.TXT`` (CC BY 3.0, CC BY 3.0 US or CC0). Drawn icons teach
a photo tower little about photographs; these have a photograph's shading, materials and
perspective, and a name to pair them with the line drawings of the same thing.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from .debian import fetch_deb

PACKAGE, VERSION = "sweethome3d-furniture", "1.8-1"
CATALOGUE = "PluginFurnitureCatalog.properties"


class Piece(NamedTuple):
    """One piece of a catalogue: its English name, category, rendering and where it came from."""

    name: str
    category: str
    image: Image.Image
    source: str  # "<catalogue>.sh3f:<icon path>"
    licence: str


def properties(text: str) -> dict[str, str]:
    """A Java ``.properties`` text as a dict (``key=value`` lines, ``#`` and ``!`` comments
    and ``\\u00e9``-style escapes)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), value.strip())
    return out


def licence_line(text: str) -> str:
    """The licence a catalogue's ``LICENSE.TXT`` names, by the address it gives."""
    text = text.lower()
    for address, name in (("licenses/by/3.0/us", "CC-BY-3.0-US"), ("licenses/by/3.0", "CC-BY-3.0"),
                          ("choose/zero", "CC0-1.0"), ("publicdomain/zero", "CC0-1.0")):
        if address in text:
            return name
    return "see LICENSE.TXT"


def catalogue_pieces(sh3f: Path) -> list[Piece]:
    """Every piece of one ``.sh3f`` catalogue with an icon, its rendering composited on white."""
    with zipfile.ZipFile(sh3f) as z:
        names = set(z.namelist())
        props = properties(z.read(CATALOGUE).decode("latin-1"))
        licence = licence_line(z.read("LICENSE.TXT").decode("utf-8", "replace")) if "LICENSE.TXT" in names else "?"
        pieces = []
        for key in sorted((k for k in props if k.startswith("name#")), key=lambda k: int(k.split("#")[1])):
            n = key.split("#")[1]
            icon = props.get(f"icon#{n}", "").lstrip("/")
            if icon not in names:
                continue
            with Image.open(io.BytesIO(z.read(icon))) as im:
                rgba = im.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, (0, 0), rgba)
            pieces.append(Piece(props[key], props.get(f"category#{n}", ""), image, f"{sh3f.name}:{icon}", licence))
    return pieces


def furniture_pieces(root: Path | None = None) -> list[Piece]:
    """Every piece of every catalogue of the package (fetched with apt-get when ``root`` is None)."""
    root = root or fetch_deb(PACKAGE, VERSION)
    folder = root / "usr" / "share" / "sweethome3d" / "furniture"
    return [p for sh3f in sorted(folder.glob("*.sh3f")) for p in catalogue_pieces(sh3f)]


def piece_class(name: str, known: set[str]) -> str | None:
    """The class of a piece: its whole name's concept if ``known`` has it ("Coffee machine":
    ``coffee_machine``), else its last word's ("Folding chair": ``chair``), else None."""
    from .iconsets import concept

    words = re.findall(r"[A-Za-z]+", name)
    if not words:
        return None
    whole = concept("-".join(w.lower() for w in words))
    if whole in known:
        return whole
    head = concept(words[-1].lower())
    return head if len(head) >= 3 and head in known else None
