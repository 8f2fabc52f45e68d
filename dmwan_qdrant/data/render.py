"""Rendering a class of the procedural benchmark as a photo or as a sketch.

Photos: filled parts with per-part colour, directional shading, a highlight on round parts,
texture (stripes, dots, checks, noise), a drop shadow, over a blurred cluttered background
(gradient, blobs, lines, distractor fragments). Sketches: black jittered strokes of the part
outlines on white, with varied stroke width, slightly misplaced parts and missing strokes.

Everything is drawn at twice the output size and box-downsampled, which antialiases cheaply.
All randomness comes from the ``random.Random`` passed in, so a sample is a pure function of its
seed.
"""

from __future__ import annotations

import colorsys
import math
import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .shapes import Part, Point, fill_polygons, refit, stroke_paths

#: Low-quality kinds: a photo buried in clutter, a sketch reduced to one or two parts, a sketch
#: with one part taken from another class.
CLUTTERED, ABSTRACT, WRONG_PART = "cluttered", "abstract", "wrong_part"

_FILL_KINDS = ("ellipse", "rect", "triangle", "trapezoid", "dome", "star", "polygon")
_ROUND_KINDS = ("ellipse", "dome", "ring")


@dataclass(frozen=True)
class Pose:
    """Where an object lands on the canvas: rotation, scale, shift, mirror and squash."""

    angle: float  # degrees, clockwise
    scale: float  # 1 = the object frame spans 85% of the canvas
    dx: float  # shift, in canvas half-widths
    dy: float
    flip: bool  # mirrored left-right
    aspect: float  # horizontal stretch

    @classmethod
    def random(cls, rng: random.Random, max_angle: float = 25.0) -> "Pose":
        return cls(rng.uniform(-max_angle, max_angle), rng.uniform(0.75, 1.0), rng.uniform(-0.1, 0.1),
                   rng.uniform(-0.1, 0.1), rng.random() < 0.5, rng.uniform(0.88, 1.12))

    def to_pixels(self, pts: list[Point], size: int) -> list[Point]:
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        k = 0.85 * self.scale * size / 2
        out = []
        for x, y in pts:
            x = (-x if self.flip else x) * self.aspect
            out.append(((x * c - y * s) * k + (1 + self.dx) * size / 2, (x * s + y * c) * k + (1 + self.dy) * size / 2))
        return out


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(c) for c in np.clip(colour, 0, 255))  # type: ignore[return-value]


def _smooth_noise(nrng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]-ish: a coarse random grid upsampled bilinearly."""
    coarse = nrng.normal(0, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BILINEAR))


def _texture(rng: random.Random, nrng: np.random.Generator, xs: np.ndarray, ys: np.ndarray,
             size: int) -> np.ndarray | float:
    """A multiplicative surface pattern around 1, over the pixel grid ``xs``, ``ys`` of a
    ``size``-pixel canvas (the pattern's scale follows the canvas)."""
    kind = rng.choice(("plain", "plain", "stripes", "dots", "checks", "noise"))
    if kind == "plain":
        return 1.0
    k = 2 * math.pi / (size * rng.uniform(0.05, 0.11))
    if kind == "stripes":
        a = rng.uniform(0, math.pi)
        return 1 + 0.16 * np.sign(np.sin(k * (xs * math.cos(a) + ys * math.sin(a))))
    if kind == "dots":
        return 1 - 0.3 * (np.sin(k * xs) * np.sin(k * ys) > 0.55)
    if kind == "checks":
        return 1 + 0.13 * np.sign(np.sin(k * xs) * np.sin(k * ys))
    h, w = xs.shape
    cells = max(2, round(rng.randint(6, 16) * max(h, w) / size))
    return 1 + 0.14 * _smooth_noise(nrng, max(h, w), cells)[:h, :w]


def _random_fragment(rng: random.Random, size: int, lo: float, hi: float, spread: float = 1.0) -> list[Point]:
    """A stray primitive, in pixels (background distractors, occluders); ``lo``..``hi`` is its
    size in canvas widths, ``spread`` how far from the centre it may land (1 = anywhere)."""
    part = Part(rng.choice(_FILL_KINDS), 0, 0, rng.uniform(lo, hi), rng.uniform(lo, hi), rng.uniform(0, 360),
                n=rng.randint(3, 7), taper=rng.uniform(0.4, 1.6))
    cx, cy = (size / 2 * (1 + spread * rng.uniform(-1, 1)) for _ in range(2))
    return [(cx + x * size / 2, cy + y * size / 2) for x, y in fill_polygons(part)[0][0]]


def _background(rng: random.Random, nrng: np.random.Generator, size: int, clutter: int) -> Image.Image:
    """A blurred scene: colour gradient, soft noise, blobs, lines and distractor fragments."""
    # Gradient and soft noise are low-frequency: compute them coarse and upsample.
    coarse = max(8, size // 4)
    xs, ys = _grid(coarse)
    hue = rng.random()
    c0 = _hsv(hue, rng.uniform(0.05, 0.45), rng.uniform(0.45, 0.95))
    c1 = _hsv(hue + rng.uniform(-0.2, 0.2), rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.95))
    a = rng.uniform(0, 2 * math.pi)
    t = ((xs * math.cos(a) + ys * math.sin(a)) / coarse * 0.7 + 0.5)[..., None]
    arr = c0 * (1 - t) + c1 * t
    arr *= (1 + 0.08 * _smooth_noise(nrng, coarse, rng.randint(3, 8)))[..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").resize((size, size), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    for _ in range(clutter):
        colour = _rgb(_hsv(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.95)))
        roll = rng.random()
        if roll < 0.35:
            x, y, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(size * 0.04, size * 0.2)
            draw.ellipse((x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r), fill=colour)
        elif roll < 0.65:
            draw.line([(rng.uniform(0, size), rng.uniform(0, size)) for _ in range(rng.randint(2, 4))],
                      fill=colour, width=rng.randint(1, max(2, size // 30)))
        else:
            draw.polygon(_random_fragment(rng, size, 0.1, 0.35), fill=colour)
    # Out of focus: the object stays sharp over it, as in a photograph.
    return img.filter(ImageFilter.BoxBlur(size * rng.uniform(0.006, 0.02)))


def _part_mask(polys: list[tuple[list[Point], bool]], size: int, box: tuple[int, int, int, int],
               outline: bool = False) -> np.ndarray:
    """The part's coverage in [0, 1] within ``box`` (x0, y0, x1, y1), shaped (h, w, 1)."""
    x0, y0, x1, y1 = box
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(mask)
    for pts, add in polys:
        local = [(x - x0, y - y0) for x, y in pts]
        if outline:
            draw.polygon(local, outline=255, width=max(1, size // 90))
        else:
            draw.polygon(local, fill=255 if add else 0)
    return np.asarray(mask, dtype=np.float32)[..., None] / 255.0


def render_photo(parts: tuple[Part, ...], rng: random.Random, size: int, quality: str = "ok") -> Image.Image:
    """A photo-like RGB image of the object; ``quality=CLUTTERED`` buries it in clutter and occluders."""
    big = size * 2
    nrng = np.random.default_rng(rng.getrandbits(63))
    cluttered = quality == CLUTTERED
    canvas = _background(rng, nrng, big, rng.randint(3, 7) + (18 if cluttered else 0))
    arr = np.asarray(canvas, dtype=np.float32)
    pose = Pose.random(rng)
    placed = [(part, [(pose.to_pixels(p, big), add) for p, add in fill_polygons(part)]) for part in parts]

    # Drop shadow: the whole silhouette, offset and blurred, darkens the background.
    shadow = Image.new("L", (big, big), 0)
    sd = ImageDraw.Draw(shadow)
    off = big * rng.uniform(0.015, 0.04)
    for _, polys in placed:
        for pts, add in polys:
            if add:
                sd.polygon([(x + off, y + off) for x, y in pts], fill=int(rng.uniform(70, 130)))
    shadow = shadow.filter(ImageFilter.BoxBlur(big * 0.02))
    arr = arr * (1 - np.asarray(shadow, dtype=np.float32)[..., None] / 255.0)

    xs, ys = _grid(big)
    light = rng.uniform(0, 2 * math.pi)
    lx, ly = math.cos(light), math.sin(light)
    hue = rng.random()
    main = _hsv(hue, rng.uniform(0.35, 0.9), rng.uniform(0.5, 0.95))
    accent = _hsv(hue + rng.uniform(0.25, 0.75), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.9))
    for part, polys in placed:
        pts = [p for poly, _ in polys for p in poly]
        # Work inside the part's bounding box only: most of the canvas is not this part.
        box = (max(0, int(min(x for x, _ in pts)) - 2), max(0, int(min(y for _, y in pts)) - 2),
               min(big, int(max(x for x, _ in pts)) + 3), min(big, int(max(y for _, y in pts)) + 3))
        colour = main if rng.random() < 0.6 else (accent if rng.random() < 0.7 else _hsv(rng.random(), 0.6, 0.7))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        m = _part_mask(polys, big, box)
        bx, by = xs[box[1]:box[3], box[0]:box[2]], ys[box[1]:box[3], box[0]:box[2]]
        cx, cy = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        r = max(2.0, max(math.hypot(x - cx, y - cy) for x, y in pts))
        # Lit from one side across the whole object, darker away from the light.
        shade = 1.0 - 0.32 * np.clip(((bx - cx) * lx + (by - cy) * ly) / r, -1, 1)
        if part.kind in _ROUND_KINDS:  # round parts: falloff to the rim and a highlight
            d2 = ((bx - cx) ** 2 + (by - cy) ** 2) / (r * r)
            hx, hy = cx - 0.4 * r * lx, cy - 0.4 * r * ly
            shade = shade - 0.2 * np.clip(d2, 0, 1) + 0.45 * np.exp(-((bx - hx) ** 2 + (by - hy) ** 2) / (0.08 * r * r))
        layer = colour * (shade * _texture(rng, nrng, bx, by, big))[..., None]
        region = arr[box[1]:box[3], box[0]:box[2]]
        region = region * (1 - m) + layer * m
        region *= 1 - 0.45 * _part_mask(polys, big, box, outline=True)
        arr[box[1]:box[3], box[0]:box[2]] = region

    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if cluttered:  # occluders and foreground clutter over the object
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(2, 4)):
            draw.polygon(_random_fragment(rng, big, 0.15, 0.4, spread=0.45),
                         fill=_rgb(_hsv(rng.random(), rng.uniform(0.1, 0.8), rng.uniform(0.2, 0.95))))
        for _ in range(rng.randint(2, 5)):
            draw.line([(rng.uniform(0, big), rng.uniform(0, big)) for _ in range(3)], width=rng.randint(2, max(3, big // 20)),
                      fill=_rgb(_hsv(rng.random(), rng.uniform(0.1, 0.8), rng.uniform(0.2, 0.95))))
    noisy = np.asarray(img, dtype=np.float32) + nrng.normal(0, rng.uniform(1, 5), (big, big, 1)).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").reduce(2)


def _hand_drawn(pts: list[Point], closed: bool, rng: random.Random, amount: float, size: int) -> list[Point]:
    """Resample a polyline and wobble it smoothly, like a hand that does not follow the ruler."""
    loop = pts + [pts[0]] if closed else pts
    step = size * 0.025
    dense: list[tuple[float, float, float]] = []  # x, y, arc length
    run = 0.0
    for (x0, y0), (x1, y1) in zip(loop, loop[1:]):
        seg = math.hypot(x1 - x0, y1 - y0)
        n = max(1, int(seg / step))
        for i in range(n):
            dense.append((x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, run + seg * i / n))
        run += seg
    dense.append((loop[-1][0], loop[-1][1], run))
    if closed:  # hands overshoot where a closed stroke meets its start
        extra = max(1, int(len(dense) * rng.uniform(0.0, 0.12)))
        dense += [(x, y, run + s) for x, y, s in dense[1:extra]]
    f1, f2 = rng.uniform(3, 7) / size, rng.uniform(9, 16) / size
    p = [rng.uniform(0, 2 * math.pi) for _ in range(4)]
    out = []
    for x, y, s in dense:
        out.append((x + amount * (math.sin(f1 * s + p[0]) + 0.4 * math.sin(f2 * s + p[1])) + rng.gauss(0, amount * 0.15),
                    y + amount * (math.sin(f1 * s + p[2]) + 0.4 * math.sin(f2 * s + p[3])) + rng.gauss(0, amount * 0.15)))
    return out


def sketch_parts(parts: tuple[Part, ...], rng: random.Random, quality: str, donor: Part | None) -> list[Part]:
    """The parts a sketch actually draws: all but a few forgotten ones, or a low-quality selection."""
    chosen = list(parts)
    if quality == ABSTRACT:
        keep = sorted(range(len(chosen)), key=lambda i: -chosen[i].area)[: rng.choice((1, 2))]
        return [chosen[i] for i in sorted(keep)]
    if quality == WRONG_PART and donor is not None:
        i = rng.randrange(len(chosen))
        chosen[i] = refit(donor, chosen[i])
        return chosen
    if len(chosen) < 4:  # with so few parts, each one is what makes the object
        return chosen
    largest = max(range(len(chosen)), key=lambda i: chosen[i].area)
    # Forgotten strokes: never the main part, so the sketch stays the same object.
    return [p for i, p in enumerate(chosen) if i == largest or rng.random() > 0.1]


def render_sketch(parts: tuple[Part, ...], rng: random.Random, size: int, quality: str = "ok",
                  donor: Part | None = None) -> Image.Image:
    """A black-on-white line drawing of the object.

    ``quality=ABSTRACT`` keeps one or two parts with heavy jitter; ``quality=WRONG_PART`` swaps
    one part for ``donor`` (a part of another class) refitted into its place.
    """
    big = size * 2
    img = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(img)
    pose = Pose.random(rng)
    width = max(1, round(big * rng.uniform(0.014, 0.04)))
    jitter = big * rng.uniform(0.004, 0.012) * (3.0 if quality == ABSTRACT else 1.0)
    ink = rng.randint(0, 60)
    for part in sketch_parts(parts, rng, quality, donor):
        # Each part lands slightly off its place and size, as drawn freehand.
        ox, oy, sc = rng.gauss(0, 0.03), rng.gauss(0, 0.03), rng.uniform(0.92, 1.08)
        for path, closed in stroke_paths(part):
            moved = [((x - part.x) * sc + part.x + ox, (y - part.y) * sc + part.y + oy) for x, y in path]
            pts = _hand_drawn(pose.to_pixels(moved, big), closed, rng, jitter, big)
            for piece in pen_lifts(pts, rng, 8, 2, 4):
                if len(piece) >= 2:
                    draw.line(piece, fill=ink, width=width + rng.choice((0, 0, 1)), joint="curve")
    return img.reduce(2).convert("RGB")


def pen_lifts(points: list, rng: random.Random, min_points: int, head: int, tail: int) -> list[list]:
    """A stroke's points as the pieces a pen leaves: now and then (15%, when it has more than
    ``min_points``) a gap of 1-3 points where the pen lifted, at least ``head`` points from its
    start and ``tail`` from its end."""
    if len(points) > min_points and rng.random() < 0.15:
        cut = rng.randrange(head, len(points) - tail)
        return [points[:cut], points[cut + rng.randint(1, 3):]]
    return [points]


def silhouette(parts: tuple[Part, ...], size: int = 48) -> np.ndarray:
    """The canonical filled silhouette of a class (identity pose), as a boolean mask."""
    pose = Pose(0.0, 1.0, 0.0, 0.0, False, 1.0)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for part in parts:
        for pts, add in fill_polygons(part):
            draw.polygon(pose.to_pixels(pts, size), fill=255 if add else 0)
    return np.asarray(mask) > 127
