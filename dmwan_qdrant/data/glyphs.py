"""The glyphs benchmark: procedurally invented symbols, as physical objects and as hand drawings.

A second generated ZS-SBIR benchmark, of a different kind than the objects made of parts
(``ProceduralConfig(kind="glyphs")``). Each class is a glyph: a small stroke program of 2-4
smooth strokes (lines, zigzags, curves, arcs, spirals, closed loops), drawn from a fixed library
(:func:`glyph_library`) in which every glyph was accepted only if its line drawing overlaps every
earlier glyph's little, so classes stay mutually distinguishable.

- Photos render the glyph as a thing in a scene: a thick stroke of varying thickness, as an
  embossed tube, a neon tube, paint or a groove carved into the surface, with a drop shadow,
  under a mild affine and perspective warp, over a blurred cluttered background.
- Sketches draw the same program thin and wobbly in dark ink on white: every sample jitters the
  control points, misplaces and rescales strokes a little, varies the pen width and pressure,
  lifts the pen, and sometimes retraces a stroke.

Low-quality samples: photos buried in clutter, occluders and stray strokes of the glyph's own
style (``CLUTTERED``); sketches reduced to one or two strokes (``ABSTRACT``) or with one stroke
taken from another class (``WRONG_STROKE``).

Everything is drawn at twice the output size and box-downsampled. A sample is a pure function of
the ``random.Random`` passed in; the library is a constant of this module (``_LIBRARY_SEED``), so
a benchmark's seed only chooses which glyphs it uses.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from typing import Any, Callable, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .render import (ABSTRACT, CLUTTERED, _background, _grid, _hand_drawn, _hsv, _random_fragment, _rgb, _texture,
                     pen_lifts)
from .shapes import Point

#: Bumped whenever the glyph library or rendering changes (a glyphs benchmark's manifest version).
GLYPHS_VERSION = 1
#: Glyph classes in the library: the upper bound of ``n_classes`` for ``kind="glyphs"``.
MAX_GLYPH_CLASSES = 200
#: Low-quality sketch kind: one stroke replaced by a stroke of another class.
WRONG_STROKE = "wrong_stroke"
#: Stroke kinds of a glyph program.
STROKE_KINDS = ("line", "zigzag", "curve", "arc", "spiral", "loop")
#: Photo styles: how the glyph stands in the scene.
PHOTO_STYLES = ("tube", "neon", "paint", "carved")

_LIBRARY_SEED = "glyph-library/v1"
_MAX_OVERLAP = 0.4  # IoU of thickened canonical drawings above which a candidate glyph is refused
_EXTENT = 1.7  # a glyph's larger bounding-box side, in its frame [-1, 1]^2
_SPLINE_T = np.linspace(0, 1, 12, endpoint=False)


class Stroke(NamedTuple):
    """One pen stroke of a glyph, in the glyph frame (x, y in [-1, 1], y down).

    ``line`` and ``zigzag`` join their control points with straight segments; the other kinds
    run a smooth Catmull-Rom spline through them, ``closed`` ones back to the start.
    """

    kind: str
    points: tuple[Point, ...]
    closed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (the manifest's ``structures``)."""
        points = [[round(x, 4), round(y, 4)] for x, y in self.points]
        return {"kind": self.kind, "closed": self.closed, "points": points}


Glyph = tuple[Stroke, ...]


def glyph_name(index: int) -> str:
    """The class name of the library's ``index``-th glyph."""
    return f"glyph-{index:03d}"


def _knots(stroke: Stroke, points: np.ndarray | None = None) -> np.ndarray:
    """The polyline of ``stroke`` (or of its kind through ``points``): its control points joined
    straight, or 12 points per spline segment; a closed stroke ends where it starts."""
    p = np.asarray(stroke.points if points is None else points, dtype=np.float64)
    if stroke.kind in ("line", "zigzag"):
        return np.concatenate([p, p[:1]]) if stroke.closed else p
    if stroke.closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    segs = len(p) if stroke.closed else len(p) - 1
    p0, p1, p2, p3 = (ext[i:i + segs, None, :] for i in range(4))
    t = _SPLINE_T[None, :, None]
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                   + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)
    return np.concatenate([curve.reshape(-1, 2), ext[segs + 1][None]])


def stroke_path(stroke: Stroke, points: np.ndarray | None = None, step: float = 0.04) -> np.ndarray:
    """Dense (n, 2) points along ``stroke`` (or along its kind drawn through ``points``), at most
    ``step`` apart in glyph units, every knot kept (a zigzag's corners stay sharp)."""
    knots = _knots(stroke, points)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(knots, axis=0).T))])
    s = np.unique(np.concatenate([cum, np.linspace(0, cum[-1], max(2, int(math.ceil(cum[-1] / step)) + 1))]))
    return np.stack([np.interp(s, cum, knots[:, 0]), np.interp(s, cum, knots[:, 1])], axis=1)


def _random_stroke(rng: random.Random, kind: str) -> Stroke:
    """A stroke of ``kind`` somewhere around the centre, before the glyph is normalised."""
    x, y = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
    if kind == "line":
        a, length = rng.uniform(0, 2 * math.pi), rng.uniform(0.9, 1.6)
        return Stroke(kind, ((x, y), (x + length * math.cos(a), y + length * math.sin(a))))
    if kind in ("zigzag", "curve"):
        # A walk: sharp alternating turns for a zigzag, gentle ones (maybe an S) for a curve.
        h = rng.uniform(0, 2 * math.pi)
        pts, sign = [(x, y)], rng.choice((-1, 1))
        for i in range(rng.randint(2, 3) if kind == "zigzag" else rng.randint(3, 4)):
            if kind == "zigzag":
                h += sign * math.radians(rng.uniform(105, 150)) if i else 0.0
                sign = -sign if rng.random() < 0.7 else sign
                step = rng.uniform(0.55, 0.9)
            else:
                h += sign * math.radians(rng.uniform(20, 70)) if i else 0.0
                sign = -sign if rng.random() < 0.25 else sign
                step = rng.uniform(0.35, 0.6)
            x, y = x + step * math.cos(h), y + step * math.sin(h)
            pts.append((x, y))
        return Stroke(kind, tuple(pts))
    a0, direction = rng.uniform(0, 2 * math.pi), rng.choice((-1, 1))
    if kind == "loop":
        r, n = rng.uniform(0.2, 0.45), 5
        radii = [r * rng.uniform(0.75, 1.25) for _ in range(n)]
        pts = tuple((x + q * math.cos(a0 + 2 * math.pi * i / n), y + q * math.sin(a0 + 2 * math.pi * i / n))
                    for i, q in enumerate(radii))
        return Stroke(kind, pts, closed=True)
    if kind == "arc":
        r, ratio, sweep = rng.uniform(0.4, 0.8), rng.uniform(0.7, 1.3), math.radians(rng.uniform(120, 290))
        n = 6
        return Stroke(kind, tuple((x + r * math.cos(a0 + direction * sweep * i / (n - 1)),
                                   y + r * ratio * math.sin(a0 + direction * sweep * i / (n - 1))) for i in range(n)))
    # spiral: more than a turn, the radius shrinking inwards
    r, sweep = rng.uniform(0.5, 0.8), math.radians(rng.uniform(380, 560))
    n = int(sweep / math.radians(45)) + 1
    return Stroke(kind, tuple((x + r * (1 - 0.7 * i / (n - 1)) * math.cos(a0 + direction * sweep * i / (n - 1)),
                               y + r * (1 - 0.7 * i / (n - 1)) * math.sin(a0 + direction * sweep * i / (n - 1)))
                              for i in range(n)))


def _normalise(strokes: list[Stroke]) -> Glyph | None:
    """Centre the glyph and scale its larger side to ``_EXTENT``; None when it is too skinny."""
    pts = np.concatenate([_knots(s) for s in strokes])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    w, h = hi - lo
    if min(w, h) < 0.35 * max(w, h):
        return None
    c, k = (lo + hi) / 2, _EXTENT / max(w, h)
    return tuple(s._replace(points=tuple((float((x - c[0]) * k), float((y - c[1]) * k)) for x, y in s.points))
                 for s in strokes)


def random_glyph(rng: random.Random) -> Glyph | None:
    """A candidate glyph: 2-4 strokes, later ones often starting on an earlier one."""
    kinds = rng.choices(STROKE_KINDS, weights=(2, 1.5, 3, 2, 0.6, 1.2), k=rng.choice((2, 3, 3, 4)))
    if kinds.count("spiral") + kinds.count("loop") > 1:
        return None
    strokes: list[Stroke] = []
    for kind in kinds:
        s = _random_stroke(rng, kind)
        if strokes and rng.random() < 0.6:  # attach: the pen starts on an earlier stroke
            path = _knots(rng.choice(strokes))
            ax, ay = path[rng.randrange(len(path))]
            sx, sy = s.points[0]
            s = s._replace(points=tuple((x - sx + ax, y - sy + ay) for x, y in s.points))
        strokes.append(s)
    return _normalise(strokes)


def glyph_drawing(glyph: Glyph, size: int = 32, width: int = 3) -> np.ndarray:
    """The canonical line drawing of a glyph (identity pose, ``width``-pixel lines) as a boolean mask."""
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for s in glyph:
        pts = (_knots(s) * 0.46 + 0.5) * size
        draw.line(pts.ravel().tolist(), fill=255, width=width, joint="curve")
    return np.asarray(img) > 127


@lru_cache(maxsize=1)
def glyph_library() -> dict[str, Glyph]:
    """Every glyph class, by name, in library order: a fixed constant of this module.

    Candidates come from one seeded generator; each is kept only if its thickened drawing
    overlaps every kept glyph's by at most ``_MAX_OVERLAP`` (IoU), so any two classes differ.
    """
    rng = random.Random(_LIBRARY_SEED)
    glyphs: list[Glyph] = []
    masks = np.zeros((0, 32 * 32), dtype=bool)
    while len(glyphs) < MAX_GLYPH_CLASSES:
        glyph = random_glyph(rng)
        if glyph is None:
            continue
        m = glyph_drawing(glyph, 32, 4).reshape(1, -1)
        if masks.shape[0]:
            iou = (masks & m).sum(1) / np.maximum(1, (masks | m).sum(1))
            if iou.max() > _MAX_OVERLAP:
                continue
        glyphs.append(glyph)
        masks = np.concatenate([masks, m])
    return {glyph_name(i): g for i, g in enumerate(glyphs)}


GLYPH_NAMES: list[str] = [glyph_name(i) for i in range(MAX_GLYPH_CLASSES)]


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 projective map sending the four ``src`` points to ``dst``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def _placement(rng: random.Random, size: int, max_angle: float, shear: float,
               perspective: float) -> Callable[[np.ndarray], np.ndarray]:
    """A random pose (rotation, scale, stretch, shear, shift, then a perspective tilt) mapping
    glyph-frame points (n, 2) to canvas pixels."""
    a = math.radians(rng.uniform(-max_angle, max_angle))
    scale, aspect, sh = rng.uniform(0.82, 0.98), rng.uniform(0.88, 1.12), rng.uniform(-shear, shear)
    dx, dy = rng.uniform(-0.07, 0.07), rng.uniform(-0.07, 0.07)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    lin = scale * rot @ np.array([[aspect, sh], [0.0, 1.0]])
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=np.float64)
    tilt = _homography(corners, corners + np.array([[rng.uniform(-perspective, perspective) for _ in range(2)]
                                                    for _ in range(4)]))

    def place(pts: np.ndarray) -> np.ndarray:
        q = pts @ lin.T + (dx, dy)
        h = np.concatenate([q, np.ones((len(q), 1))], axis=1) @ tilt.T
        return (h[:, :2] / h[:, 2:] + 1) * size / 2

    return place


def _jittered(stroke: Stroke, rng: random.Random, amount: float) -> np.ndarray:
    """The stroke's control points moved a little each, then the whole stroke a little."""
    p = np.array(stroke.points) + np.array([[rng.gauss(0, amount), rng.gauss(0, amount)] for _ in stroke.points])
    centre = p.mean(axis=0)
    return (p - centre) * rng.uniform(0.9, 1.1) + centre + (rng.gauss(0, amount), rng.gauss(0, amount))


def _stroke_mask(paths: list[np.ndarray], radii: list[float], rng: random.Random, big: int) -> np.ndarray:
    """Coverage in [0, 1] of thick strokes whose thickness swells and thins along their length."""
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    for pts, r0 in zip(paths, radii):
        f, phase = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * math.pi)
        seg = np.hypot(*np.diff(pts, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(seg)]) / max(1e-6, seg.sum())
        r = r0 * (1 + 0.25 * np.sin(2 * math.pi * f * s + phase))
        # Discs no further apart than a third of their radius make a smooth band.
        for (x0, y0), (x1, y1), ra, rb in zip(pts[:-1], pts[1:], r[:-1], r[1:]):
            k = max(1, int(math.hypot(x1 - x0, y1 - y0) / max(0.5, min(ra, rb) / 3)))
            for t in np.linspace(0, 1, k, endpoint=False):
                x, y, q = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, ra + (rb - ra) * t
                draw.ellipse((x - q, y - q, x + q, y + q), fill=255)
        x, y = pts[-1]
        draw.ellipse((x - r[-1], y - r[-1], x + r[-1], y + r[-1]), fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def render_glyph_photo(glyph: Glyph, rng: random.Random, size: int, quality: str = "ok") -> Image.Image:
    """A photo-like RGB image of the glyph as an object; ``quality=CLUTTERED`` buries it."""
    big = size * 2
    nrng = np.random.default_rng(rng.getrandbits(63))
    cluttered = quality == CLUTTERED
    style = rng.choice(PHOTO_STYLES)
    bg = np.asarray(_background(rng, nrng, big, rng.randint(2, 6) + (16 if cluttered else 0)), dtype=np.float32)
    place = _placement(rng, big, 12.0, 0.12, 0.08)
    width = big * rng.uniform(0.022, 0.04)
    strokes = list(glyph)
    if cluttered:  # stray strokes of the same style, as if other symbols stood around it
        strokes += [_random_stroke(rng, rng.choice(STROKE_KINDS)) for _ in range(rng.randint(1, 2))]
    paths = [place(stroke_path(s)) for s in strokes]
    mask = _stroke_mask(paths, [width * rng.uniform(0.8, 1.2) for _ in paths], rng, big)
    m = mask[..., None]

    hue = rng.random()
    colour = _hsv(hue, rng.uniform(0.45, 0.95), rng.uniform(0.55, 1.0))
    light = rng.uniform(0, 2 * math.pi)
    # A relief from the blurred mask: its slope is the surface normal of a rounded stroke.
    height = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(width * 0.6)),
                        dtype=np.float32) / 255.0
    gy, gx = np.gradient(height)
    k = 2.5 * width
    nz = 1 / np.sqrt(1 + (k * gx) ** 2 + (k * gy) ** 2)
    lx, ly, lz = 0.7 * math.cos(light), 0.7 * math.sin(light), 0.7
    lambert = np.clip((-k * gx * lx - k * gy * ly + lz) * nz, 0, 1)
    if style == "carved":  # a groove: the background's own colour, lit from the other side
        lambert = np.clip((k * gx * lx + k * gy * ly + lz) * nz, 0, 1)
        colour = bg.reshape(-1, 3).mean(axis=0) * 0.75
    shading = 0.35 + 0.85 * lambert
    if style == "paint":
        texture = np.broadcast_to(_texture(rng, nrng, *_grid(big), big), (big, big))
        surface = colour * ((0.85 + 0.25 * lambert) * texture)[..., None]
    else:
        surface = colour * shading[..., None] + 255 * 0.5 * (lambert ** 12)[..., None] * (style == "tube")

    if style == "neon":  # a dim room, the tube glowing into it
        bg = bg * rng.uniform(0.2, 0.4)
        glow = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(width * 1.5)),
                          dtype=np.float32)[..., None] / 255.0
        bg = bg + colour * glow * 1.6
        surface = colour * 0.5 + 255 * 0.5 * (0.6 + 0.4 * lambert[..., None])
    elif style in ("tube", "paint"):  # a drop shadow on the surface behind
        off = max(1, int(round(width * rng.uniform(0.4, 1.0))))
        shadow = np.zeros_like(height)
        shadow[off:, off:] = height[:-off, :-off]
        bg = bg * (1 - rng.uniform(0.35, 0.6) * shadow[..., None])
    arr = bg * (1 - m) + surface * m

    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if cluttered:  # occluders over the glyph
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(2, 4)):
            draw.polygon(_random_fragment(rng, big, 0.15, 0.4, spread=0.45),
                         fill=_rgb(_hsv(rng.random(), rng.uniform(0.1, 0.8), rng.uniform(0.2, 0.95))))
    noisy = np.asarray(img, dtype=np.float32) + nrng.normal(0, rng.uniform(1, 5), (big, big, 1)).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").reduce(2)


def refit_stroke(donor: Stroke, slot: Stroke) -> Stroke:
    """``donor`` moved and scaled onto ``slot``'s bounding box (a stroke from another class)."""
    d, s = stroke_path(donor), stroke_path(slot)
    dc, sc = (d.min(0) + d.max(0)) / 2, (s.min(0) + s.max(0)) / 2
    k = max(np.ptp(s, axis=0).max(), 0.4) / max(np.ptp(d, axis=0).max(), 1e-6)
    return donor._replace(points=tuple((float(x), float(y)) for x, y in (np.array(donor.points) - dc) * k + sc))


def sketch_strokes(glyph: Glyph, rng: random.Random, quality: str, donor: Stroke | None) -> list[Stroke]:
    """The strokes a sketch draws, in drawing order: all of them (shuffled), or a low-quality pick."""
    chosen = list(glyph)
    if quality == ABSTRACT:
        # Over-abstract: the longest stroke only (one or two of four), as a hurried hand draws.
        length = [float(np.hypot(*np.diff(_knots(s), axis=0).T).sum()) for s in chosen]
        keep = sorted(range(len(chosen)), key=lambda i: -length[i])[: 1 if len(chosen) < 4 else rng.choice((1, 2))]
        chosen = [chosen[i] for i in sorted(keep)]
    elif quality == WRONG_STROKE and donor is not None:
        i = rng.randrange(len(chosen))
        chosen[i] = refit_stroke(donor, chosen[i])
    rng.shuffle(chosen)
    return chosen


def render_glyph_sketch(glyph: Glyph, rng: random.Random, size: int, quality: str = "ok",
                        donor: Stroke | None = None) -> Image.Image:
    """A thin, wobbly, hand-drawn black-on-white drawing of the glyph.

    ``quality=ABSTRACT`` keeps the longest one or two strokes, shakier; ``quality=WRONG_STROKE``
    swaps one stroke for ``donor`` (a stroke of another class) refitted into its place.
    """
    big = size * 2
    img = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(img)
    place = _placement(rng, big, 10.0, 0.06, 0.0)
    width = big * rng.uniform(0.014, 0.035)
    wobble = big * rng.uniform(0.004, 0.01) * (2.5 if quality == ABSTRACT else 1.0)
    ink = rng.randint(0, 50)
    for stroke in sketch_strokes(glyph, rng, quality, donor):
        pts = stroke_path(stroke, _jittered(stroke, rng, 0.035 if quality != ABSTRACT else 0.08), step=0.05)
        pixels = [tuple(p) for p in place(pts)]
        w = max(1, round(width * rng.uniform(0.8, 1.25)))
        for _ in range(2 if rng.random() < 0.12 else 1):  # now and then a stroke is retraced
            line = _hand_drawn(pixels, False, rng, wobble, big)
            for piece in pen_lifts(line, rng, 10, 3, 5):
                if len(piece) >= 2:
                    draw.line(piece, fill=min(140, ink + rng.randint(0, 40)), width=w, joint="curve")
    return img.reduce(2).convert("RGB")


def render_glyph_sample(name: str, domain: str, index: int, bad: bool, seed: int, size: int,
                        classes: list[str]) -> tuple[Image.Image, dict[str, str]]:
    """One image of the benchmark and its quality details ({"kind": ...}, plus the donor class of
    a ``WRONG_STROKE`` sketch): a pure function of (seed, class, domain, index)."""
    library = glyph_library()
    glyph = library[name]
    rng = random.Random(f"{seed}/{name}/{domain}/{index}")
    if domain == "photo":
        quality = CLUTTERED if bad else "ok"
        return render_glyph_photo(glyph, rng, size, quality), {"kind": quality}
    quality = (ABSTRACT if rng.random() < 0.5 else WRONG_STROKE) if bad else "ok"
    donor_rng = random.Random(f"{seed}/{name}/{domain}/{index}/donor")
    donor_class = donor_rng.choice([c for c in classes if c != name])
    donor = donor_rng.choice(library[donor_class])
    image = render_glyph_sketch(glyph, rng, size, quality, donor)
    return image, {"kind": quality, **({"donor": donor_class} if quality == WRONG_STROKE else {})}
