"""Pseudo-sketches: a line drawing made from any coloured picture by an edge transform.

A labelled coloured image (an icon, a clip-art, a photo) gives a sketch for training: the
colour edges of the picture (the largest Sobel gradient over the three channels of a slightly
blurred copy), kept where they are strong, drawn as dark lines on white. Flat-colour pictures
give their outlines and the borders between fills, which is what a person draws of them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def _on_white(image: Image.Image) -> Image.Image:
    """``image`` as RGB, transparent parts white."""
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def colour_edges(image: Image.Image, blur: float = 1.0) -> np.ndarray:
    """Per-pixel edge strength in 0..1: the largest Sobel gradient magnitude over R, G and B of
    ``image`` blurred by ``blur`` px (transparent parts count as white)."""
    rgb = np.asarray(_on_white(image).filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) / 255.0
    padded = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge")
    # Sobel by slices: gx = right column minus left column, weighted 1-2-1 over the rows.
    gx = padded[:, 2:] - padded[:, :-2]
    gx = gx[:-2] + 2 * gx[1:-1] + gx[2:]
    gy = padded[2:] - padded[:-2]
    gy = gy[:, :-2] + 2 * gy[:, 1:-1] + gy[:, 2:]
    magnitude = np.sqrt(gx**2 + gy**2).max(axis=2) / 4.0
    return np.clip(magnitude, 0.0, 1.0)


def pseudo_sketch(image: Image.Image, threshold: float = 0.08, blur: float = 1.0, width: int = 1,
                  dark: float = 0.3) -> Image.Image:
    """A line drawing of ``image``: its dark strokes (luminance below ``dark``) kept as they are,
    and black wherever else `colour_edges` exceeds ``threshold`` (the borders between fills), on
    white; the lines thickened to about ``width`` px (1: as found). RGB, the size of ``image``.

    Edges beside a dark stroke are dropped, so a drawn outline stays one line instead of the two
    borders an edge filter finds on either side of it."""
    grey = np.asarray(_on_white(image).convert("L"), dtype=np.float32) / 255.0
    strokes = grey < dark
    near_stroke = np.asarray(Image.fromarray(strokes.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0
    edges = (colour_edges(image, blur) > threshold) & ~near_stroke
    lines = Image.fromarray(np.where(edges | strokes, 0, 255).astype(np.uint8), "L")
    if width > 1:
        lines = lines.filter(ImageFilter.MinFilter(2 * (width // 2) + 1))
    return lines.convert("RGB")
