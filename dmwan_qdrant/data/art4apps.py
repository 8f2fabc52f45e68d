"""Art4Apps word pictures: shaded, coloured drawings of named things, each with its ink outline.

Debian's ``pysiogame`` (an educational activity pack) ships about 600 pictures of the Art4Apps
word database (Smart4Kids, CC BY-SA, per the package's ``CREDITS.txt``), one per English word, in
topic folders (``animals``, ``food``, ``fruit_n_veg``, ``clothes_n_accessories``, ``transport``,
...): inked outlines filled with shaded colour, the things a person draws and photographs. The
ink of a picture, kept alone (`ink_outline`), is a colouring-book line drawing of it: line art
paired with its coloured rendering, in classes (animals, food, clothes) the icon sets draw
little of.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from .debian import fetch_deb

PACKAGE, VERSION = "pysiogame", "4.20.01-1"
FOLDER = "usr/share/games/pysiogame/res/images/art4apps"
LICENCE = "CC-BY-SA (Art4Apps, Smart4Kids)"
#: Topics left out: verbs, pictured as scenes (``ate``, ``clap``), not things.
TOPICS_LEFT_OUT = ("actions",)
#: Words that end in s and name one thing (``glasses`` are not a ``glass``).
NOT_PLURALS = frozenset({"glasses", "scissors", "pants", "trousers", "shorts", "jeans", "binoculars", "pliers",
                         "tweezers", "clothes", "sunglasses", "goggles", "headphones", "dominoes"})


class Picture(NamedTuple):
    """One word's picture: the word, its topic folder, the image (RGB) and its path in the package."""

    word: str
    topic: str
    image: Image.Image
    source: str


def pictures(root: Path | None = None) -> list[Picture]:
    """Every picture of a topic not in `TOPICS_LEFT_OUT` (the package fetched with apt-get
    when ``root`` is None), in file order."""
    root = root or fetch_deb(PACKAGE, VERSION)
    out = []
    for path in sorted((root / FOLDER).glob("*/*.jpg")):
        if path.parent.name in TOPICS_LEFT_OUT:
            continue
        with Image.open(path) as im:
            image = im.convert("RGB")
        out.append(Picture(path.stem, path.parent.name, image, f"{FOLDER}/{path.parent.name}/{path.name}"))
    return out


def ink_outline(image: Image.Image, dark: float = 0.35) -> Image.Image:
    """The ink of a drawing as a line drawing: pixels darker than ``dark`` (luminance, 0..1)
    black, every other pixel white. RGB, the size of ``image``."""
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return Image.fromarray(np.where(grey < dark, 0, 255).astype(np.uint8), "L").convert("RGB")


def singular(word: str) -> list[str]:
    """``word`` and the singulars it may be the plural of (``blackberries``: ``blackberry``;
    ``bananas``: ``banana``; ``glasses``: ``glass``), most likely first."""
    forms = [word]
    if word in NOT_PLURALS:
        return forms
    if re.search(r"[^aeiou]ies$", word):
        forms.append(word[:-3] + "y")
    if re.search(r"(ch|sh|ss|x|o)es$", word):
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    return forms


def picture_class(word: str, known: set[str]) -> str:
    """The class of a word: its concept (`dmwan_qdrant.data.iconsets.concept`) where ``known``
    has it, else a singular of it that ``known`` has, else the concept itself (a class of its own)."""
    from .iconsets import concept

    name = concept(word)
    return next((form for form in singular(name) if form in known), name)
