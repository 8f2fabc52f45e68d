"""The object classes of the procedural benchmark, as data: each class is a list of parts.

Every class is a recognisable everyday object drawn from the part vocabulary of ``shapes.py``
(object frame: x, y in [-1, 1], y down; sizes are full extents; angles in degrees, clockwise).
Classes differ by structure, never only by colour: photos colour parts at random.
"""

from __future__ import annotations

import math

from .shapes import Part, Point


# Short constructors keep each class definition on a few readable lines.
def ellipse(x: float, y: float, w: float, h: float, rot: float = 0.0) -> Part:
    return Part("ellipse", x, y, w, h, rot)


def rect(x: float, y: float, w: float, h: float, rot: float = 0.0) -> Part:
    return Part("rect", x, y, w, h, rot)


def tri(x: float, y: float, w: float, h: float, rot: float = 0.0) -> Part:
    """Isosceles triangle, apex up at rot=0 (rot=180: apex down, 90: apex right)."""
    return Part("triangle", x, y, w, h, rot)


def trap(x: float, y: float, w: float, h: float, taper: float, rot: float = 0.0) -> Part:
    """Trapezoid; ``taper`` < 1 narrows the top, > 1 widens it."""
    return Part("trapezoid", x, y, w, h, rot, taper=taper)


def dome(x: float, y: float, w: float, h: float, rot: float = 0.0) -> Part:
    """Half ellipse on a flat base (rot=180: a bowl)."""
    return Part("dome", x, y, w, h, rot)


def poly(x: float, y: float, w: float, h: float, points: tuple[Point, ...] = (), n: int = 0, rot: float = 0.0) -> Part:
    return Part("polygon", x, y, w, h, rot, n=n, points=points)


def star(x: float, y: float, w: float, h: float, n: int = 5, rot: float = 0.0) -> Part:
    return Part("star", x, y, w, h, rot, n=n)


def line(x0: float, y0: float, x1: float, y1: float, t: float = 0.08) -> Part:
    """A bar from (x0, y0) to (x1, y1) of thickness ``t``."""
    length = math.hypot(x1 - x0, y1 - y0)
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
    return Part("line", (x0 + x1) / 2, (y0 + y1) / 2, length, t, angle, t=t)


def arc(x: float, y: float, w: float, h: float, a0: float, a1: float, t: float = 0.08, rot: float = 0.0) -> Part:
    return Part("arc", x, y, w, h, rot, a0=a0, a1=a1, t=t)


def ring(x: float, y: float, w: float, h: float, t: float = 0.12, rot: float = 0.0) -> Part:
    return Part("ring", x, y, w, h, rot, t=t)


def _radial(cx: float, cy: float, r: float, n: int, w: float, h: float, start: float = -90.0) -> list[Part]:
    """``n`` ellipses around (cx, cy), long axis pointing outwards (petals, wings, blades)."""
    parts = []
    for i in range(n):
        a = start + 360.0 * i / n
        parts.append(ellipse(cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a)), w, h, a))
    return parts


def _legs(cx: float, cy: float, n: int, length: float, spread: float, t: float = 0.06) -> list[Part]:
    """``n`` straight legs fanning out of (cx, cy) to both sides."""
    parts = []
    for i in range(n // 2):
        a = math.radians(-spread / 2 + spread * i / max(1, n // 2 - 1))
        dx, dy = length * math.cos(a), length * math.sin(a)
        parts += [line(cx, cy, cx + dx, cy + dy, t), line(cx, cy, cx - dx, cy + dy, t)]
    return parts


_HEART = tuple(
    (16 * math.sin(a) ** 3 / 16, -(13 * math.cos(a) - 5 * math.cos(2 * a) - 2 * math.cos(3 * a) - math.cos(4 * a)) / 15)
    for a in (2 * math.pi * i / 40 for i in range(40))
)
_CRESCENT = tuple(
    [(math.cos(math.radians(a)), math.sin(math.radians(a))) for a in range(-110, 111, 10)]
    + [(0.5 + 0.8 * math.cos(math.radians(a)), 0.85 * math.sin(math.radians(a))) for a in range(105, -106, -15)]
)
_SWEPT_WING = ((0, -1), (1, 0.5), (1, 1), (0, 0.1), (-1, 1), (-1, 0.5))
_POINTED_TOP = ((-1, -0.6), (0, -1), (1, -0.6), (1, 1), (-1, 1))
_BLADE = ((-1, 1), (-1, -0.75), (0, -1), (1, -0.75), (1, 1))
_SHIELD = ((-1, -1), (1, -1), (1, 0.15), (0, 1), (-1, 0.15))
_SPADE = ((-1, -1), (1, -1), (1, 0.3), (0, 1), (-1, 0.3))
_AXE_HEAD = ((-1, -0.45), (1, -1), (1, 1), (-1, 0.45))
_BOLT = ((0.2, -1), (0.8, -1), (0.25, -0.15), (0.7, -0.15), (-0.6, 1), (-0.1, 0.1), (-0.55, 0.1))
_GEM = ((-1, -0.35), (-0.55, -1), (0.55, -1), (1, -0.35), (0, 1))
_CROWN = ((-1, 1), (-1, -1), (-0.5, 0.1), (0, -1), (0.5, 0.1), (1, -1), (1, 1))
_SAIL_MAIN = ((-1, -1), (1, 1), (-1, 1))
_SAIL_JIB = ((1, -1), (1, 1), (-1, 1))
_PENNANT = ((-1, -1), (1, 0), (-1, 1))


def _fronds(cx: float, cy: float, r: float, angles: tuple[float, ...]) -> list[Part]:
    """Leaves hanging from a palm's crown at the given angles."""
    return [ellipse(cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a)), 2 * r, 0.24, a) for a in angles]


def _windmill_blades(cx: float, cy: float, r: float) -> list[Part]:
    return [rect(cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a)), 2 * r, 0.22, a)
            for a in (45, 135, 225, 315)]


#: Every class of the procedural benchmark, by folder name.
CLASSES: dict[str, tuple[Part, ...]] = {
    name: tuple(parts) for name, parts in {
        # buildings and furniture
        "house": [rect(0, 0.35, 1.3, 1.0), tri(0, -0.5, 1.7, 0.7), rect(-0.25, 0.6, 0.3, 0.5),
                  rect(0.35, 0.2, 0.3, 0.3)],
        "castle": [rect(-0.7, 0.1, 0.45, 1.6), rect(0.7, 0.1, 0.45, 1.6), rect(0, 0.35, 1.0, 1.1),
                   tri(-0.7, -0.9, 0.6, 0.45), tri(0.7, -0.9, 0.6, 0.45), dome(0, 0.65, 0.45, 0.5)],
        "lighthouse": [trap(0, 0.2, 0.75, 1.3, 0.6), rect(0, -0.6, 0.45, 0.3), tri(0, -0.88, 0.6, 0.26),
                       rect(0, 0.15, 0.62, 0.2), rect(0, 0.9, 1.2, 0.16)],
        "windmill": [trap(0, 0.45, 0.8, 1.1, 0.55), ellipse(0, -0.25, 0.22, 0.22), *_windmill_blades(0, -0.25, 0.5)],
        "tent": [tri(0, 0.1, 1.9, 1.5), tri(0, 0.45, 0.55, 0.8), line(0, -0.65, 0, -0.95, 0.05)],
        "igloo": [dome(0, 0.15, 1.9, 1.2), dome(0.55, 0.55, 0.55, 0.4), line(-0.8, 0.3, 0.25, 0.3, 0.05),
                  line(-0.4, -0.15, 0.45, -0.15, 0.05)],
        "door": [rect(0, 0, 1.0, 1.9), rect(0, -0.45, 0.7, 0.65), rect(0, 0.45, 0.7, 0.65),
                 ellipse(0.33, 0.05, 0.15, 0.15)],
        "window": [rect(0, 0, 1.6, 1.6), line(0, -0.8, 0, 0.8, 0.1), line(-0.8, 0, 0.8, 0, 0.1),
                   rect(0, 0.9, 1.9, 0.16)],
        "fence": [*[poly(x, 0.1, 0.32, 1.6, _POINTED_TOP) for x in (-0.75, -0.25, 0.25, 0.75)],
                  rect(0, -0.3, 1.95, 0.13), rect(0, 0.45, 1.95, 0.13)],
        "ladder": [line(-0.45, -1, -0.45, 1, 0.1), line(0.45, -1, 0.45, 1, 0.1),
                   *[line(-0.45, y, 0.45, y, 0.08) for y in (-0.6, -0.2, 0.2, 0.6)]],
        "table": [rect(0, -0.35, 1.9, 0.2), rect(-0.75, 0.3, 0.16, 1.1), rect(0.75, 0.3, 0.16, 1.1)],
        "chair": [rect(0, 0.1, 1.0, 0.16), rect(-0.43, -0.45, 0.14, 1.0), rect(-0.43, 0.55, 0.12, 0.8),
                  rect(0.43, 0.55, 0.12, 0.8), rect(-0.1, -0.6, 0.6, 0.12)],
        "bed": [rect(0, 0.25, 1.8, 0.35), rect(-0.85, 0.0, 0.16, 1.1), rect(0.85, 0.2, 0.14, 0.65),
                ellipse(-0.5, -0.02, 0.5, 0.22), line(-0.8, 0.45, -0.8, 0.8, 0.1), line(0.8, 0.45, 0.8, 0.8, 0.1)],
        "lamp": [trap(0, -0.5, 1.1, 0.65, 0.55), line(0, -0.17, 0, 0.75, 0.08), ellipse(0, 0.82, 0.85, 0.22)],
        "mailbox": [rect(0, -0.15, 1.2, 0.55), dome(0, -0.6, 1.2, 0.35), rect(0, 0.55, 0.16, 0.9),
                    line(0.45, -0.2, 0.45, -0.8, 0.06), rect(0.58, -0.75, 0.26, 0.14)],
        "traffic_light": [rect(0, -0.1, 0.75, 1.6), *[ellipse(0, y, 0.45, 0.45) for y in (-0.6, -0.1, 0.4)],
                          line(0, 0.7, 0, 1.0, 0.12)],
        # vehicles
        "car": [rect(0, 0.15, 1.9, 0.5), trap(0, -0.32, 1.0, 0.45, 0.65), ellipse(-0.55, 0.45, 0.45, 0.45),
                ellipse(0.55, 0.45, 0.45, 0.45)],
        "bus": [rect(0, 0, 1.9, 0.95), *[rect(x, -0.15, 0.38, 0.3) for x in (-0.55, 0, 0.55)],
                ellipse(-0.55, 0.5, 0.36, 0.36), ellipse(0.55, 0.5, 0.36, 0.36)],
        "truck": [rect(-0.3, -0.05, 1.2, 0.9), rect(0.6, 0.15, 0.55, 0.55), rect(0.66, 0.0, 0.3, 0.2),
                  ellipse(-0.55, 0.5, 0.36, 0.36), ellipse(0.6, 0.5, 0.36, 0.36)],
        "train": [rect(-0.25, 0.1, 1.2, 0.55), rect(0.6, -0.05, 0.6, 0.85), trap(-0.6, -0.35, 0.3, 0.35, 1.6),
                  *[ellipse(x, 0.52, 0.34, 0.34) for x in (-0.55, -0.05, 0.55)]],
        "bicycle": [ring(-0.55, 0.3, 0.75, 0.75, 0.1), ring(0.55, 0.3, 0.75, 0.75, 0.1),
                    line(-0.55, 0.3, 0, 0.3, 0.07), line(0, 0.3, -0.2, -0.25, 0.07),
                    line(-0.2, -0.25, 0.35, -0.25, 0.07), line(0.35, -0.25, 0.55, 0.3, 0.07),
                    line(0, 0.3, 0.35, -0.25, 0.07), rect(-0.2, -0.33, 0.32, 0.09),
                    line(0.35, -0.25, 0.3, -0.5, 0.07)],
        "airplane": [ellipse(0, 0, 0.28, 1.95), poly(0, -0.05, 1.95, 0.6, _SWEPT_WING),
                     poly(0, 0.8, 0.8, 0.3, _SWEPT_WING)],
        "helicopter": [ellipse(-0.15, 0.1, 1.0, 0.7), line(0.3, 0.05, 1.0, -0.05, 0.12),
                       line(1.0, -0.3, 1.0, 0.15, 0.06), line(-0.95, -0.45, 0.65, -0.45, 0.06),
                       line(-0.15, -0.45, -0.15, -0.25, 0.06), line(-0.6, 0.65, 0.3, 0.65, 0.07)],
        "rocket": [rect(0, 0.1, 0.5, 1.2), tri(0, -0.72, 0.5, 0.45), tri(-0.35, 0.55, 0.3, 0.55),
                   tri(0.35, 0.55, 0.3, 0.55), tri(0, 0.88, 0.3, 0.3, 180), ellipse(0, -0.1, 0.22, 0.22)],
        "sailboat": [trap(0, 0.72, 1.7, 0.35, 1.5), line(0, -0.95, 0, 0.55, 0.06),
                     poly(0.4, -0.15, 0.75, 1.3, _SAIL_MAIN), poly(-0.3, -0.05, 0.5, 1.0, _SAIL_JIB)],
        "ship": [trap(0, 0.5, 1.9, 0.45, 1.35), rect(0, 0.05, 1.1, 0.45), rect(-0.22, -0.4, 0.24, 0.5),
                 rect(0.25, -0.4, 0.24, 0.5)],
        # plants and food
        "tree": [rect(0, 0.6, 0.28, 0.8), ellipse(0, -0.25, 1.4, 1.2)],
        "pine_tree": [rect(0, 0.82, 0.24, 0.36), tri(0, 0.35, 1.5, 0.6), tri(0, -0.1, 1.2, 0.55),
                      tri(0, -0.55, 0.85, 0.5)],
        "palm_tree": [line(0.15, 1.0, -0.05, -0.35, 0.16),
                      *_fronds(-0.05, -0.45, 0.45, (-165, -125, -55, -15, 160, 20))],
        "cactus": [ellipse(0, 0.1, 0.45, 1.75), ellipse(-0.55, -0.15, 0.28, 0.7),
                   line(-0.55, 0.18, -0.1, 0.18, 0.2), ellipse(0.55, -0.35, 0.28, 0.6),
                   line(0.1, -0.05, 0.55, -0.05, 0.2)],
        "flower": [line(0, -0.2, 0, 1.0, 0.07), ellipse(0.25, 0.6, 0.45, 0.18, -30),
                   *_radial(0, -0.4, 0.33, 6, 0.4, 0.28), ellipse(0, -0.4, 0.32, 0.32)],
        "mushroom": [dome(0, -0.25, 1.8, 0.9), rect(0, 0.5, 0.5, 0.75), ellipse(-0.4, -0.35, 0.22, 0.18),
                     ellipse(0.3, -0.5, 0.25, 0.2)],
        "apple": [ellipse(0, 0.15, 1.5, 1.4), line(0, -0.5, 0.08, -0.9, 0.08), ellipse(0.32, -0.72, 0.45, 0.2, -25)],
        "pear": [ellipse(0, 0.38, 1.3, 1.1), ellipse(0, -0.3, 0.75, 0.85), line(0, -0.7, 0.06, -0.98, 0.07)],
        "cherries": [ellipse(-0.45, 0.55, 0.6, 0.6), ellipse(0.45, 0.6, 0.6, 0.6),
                     line(-0.45, 0.25, 0.05, -0.75, 0.06), line(0.45, 0.3, 0.05, -0.75, 0.06),
                     ellipse(0.32, -0.78, 0.45, 0.2, -20)],
        "carrot": [tri(0, 0.25, 0.6, 1.5, 180),
                   *[ellipse(x, -0.72, 0.16, 0.55, r) for x, r in ((-0.15, -25), (0, 0), (0.15, 25))]],
        "ice_cream": [tri(0, 0.4, 0.8, 1.2, 180), ellipse(0, -0.35, 0.9, 0.75), ellipse(0, -0.82, 0.22, 0.22)],
        "lollipop": [ellipse(0, -0.4, 1.0, 1.0), ring(0, -0.4, 0.5, 0.5, 0.1), line(0, 0.1, 0, 1.0, 0.08)],
        # kitchen and containers
        "cup": [rect(-0.2, 0.05, 1.0, 1.2), arc(0.3, 0.05, 0.8, 0.75, -90, 90, 0.15)],
        "wine_glass": [dome(0, -0.45, 0.95, 0.85, 180), line(0, -0.05, 0, 0.75, 0.08), ellipse(0, 0.8, 0.75, 0.16)],
        "bottle": [rect(0, 0.3, 0.7, 1.2), trap(0, -0.45, 0.7, 0.3, 0.36), rect(0, -0.75, 0.26, 0.32),
                   rect(0, 0.3, 0.7, 0.4)],
        "vase": [ellipse(0, 0.25, 1.1, 1.3), rect(0, -0.55, 0.4, 0.4), ellipse(0, -0.78, 0.65, 0.18)],
        "teapot": [ellipse(0, 0.15, 1.2, 0.95), dome(0, -0.42, 0.55, 0.25), ellipse(0, -0.6, 0.16, 0.13),
                   line(-0.55, 0.2, -0.95, -0.25, 0.14), arc(0.6, 0.15, 0.5, 0.6, -90, 90, 0.1)],
        "bucket": [trap(0, 0.25, 1.2, 1.1, 1.35), arc(0, -0.3, 1.3, 1.1, 180, 360, 0.06)],
        "bowl": [dome(0, 0.05, 1.8, 0.9, 180), rect(0, 0.6, 0.6, 0.15), ellipse(0, -0.4, 1.8, 0.18)],
        "spoon": [ellipse(0, -0.5, 0.55, 0.85), line(0, -0.1, 0, 0.95, 0.1)],
        "trophy": [dome(0, -0.4, 1.0, 0.9, 180), arc(-0.5, -0.5, 0.4, 0.45, 90, 270, 0.08),
                   arc(0.5, -0.5, 0.4, 0.45, -90, 90, 0.08), rect(0, 0.3, 0.16, 0.45), rect(0, 0.7, 0.75, 0.25)],
        "candle": [rect(0, 0.25, 0.4, 1.1), ellipse(0, -0.55, 0.22, 0.42), line(0, -0.38, 0, -0.28, 0.04),
                   ellipse(0, 0.85, 1.0, 0.2)],
        "light_bulb": [ellipse(0, -0.25, 1.1, 1.1), rect(0, 0.5, 0.45, 0.42), line(-0.22, 0.45, 0.22, 0.45, 0.05),
                       line(-0.22, 0.58, 0.22, 0.58, 0.05), ellipse(0, 0.78, 0.22, 0.12)],
        # tools and objects
        "bell": [dome(0, -0.3, 1.0, 0.9), trap(0, 0.3, 1.5, 0.45, 0.67), ellipse(0, 0.68, 0.26, 0.26),
                 ring(0, -0.85, 0.25, 0.2, 0.06)],
        "clock": [ellipse(0, 0, 1.8, 1.8), line(0, 0, 0, -0.65, 0.08), line(0, 0, 0.45, 0.2, 0.1),
                  ellipse(0, 0, 0.14, 0.14)],
        "alarm_clock": [ellipse(0, 0.1, 1.4, 1.4), dome(-0.5, -0.65, 0.45, 0.3, -35),
                        dome(0.5, -0.65, 0.45, 0.3, 35), line(-0.4, 0.7, -0.6, 0.95, 0.08),
                        line(0.4, 0.7, 0.6, 0.95, 0.08), line(0, 0.1, 0, -0.35, 0.07)],
        "hourglass": [tri(0, -0.35, 1.0, 0.62, 180), tri(0, 0.35, 1.0, 0.62), rect(0, -0.76, 1.3, 0.15),
                      rect(0, 0.76, 1.3, 0.15)],
        "key": [ring(-0.55, 0, 0.7, 0.7, 0.2), rect(0.25, 0, 1.0, 0.16), rect(0.55, 0.17, 0.12, 0.22),
                rect(0.75, 0.17, 0.12, 0.3)],
        "scissors": [ring(-0.6, -0.3, 0.5, 0.4, 0.12), ring(-0.6, 0.3, 0.5, 0.4, 0.12),
                     line(-0.4, -0.2, 0.95, 0.2, 0.12), line(-0.4, 0.2, 0.95, -0.2, 0.12)],
        "hammer": [rect(0, 0.2, 0.18, 1.5), rect(0.1, -0.65, 1.0, 0.3), tri(-0.5, -0.65, 0.3, 0.25, -90)],
        "axe": [rect(0, 0.1, 0.14, 1.75), poly(0.33, -0.55, 0.55, 0.65, _AXE_HEAD)],
        "sword": [poly(0, -0.25, 0.24, 1.45, _BLADE), rect(0, 0.5, 0.8, 0.1), rect(0, 0.7, 0.12, 0.3),
                  ellipse(0, 0.9, 0.16, 0.16)],
        "shovel": [line(0, -0.6, 0, 0.2, 0.1), rect(0, -0.85, 0.4, 0.12), poly(0, 0.55, 0.6, 0.8, _SPADE)],
        "pencil": [rect(-0.1, 0, 1.3, 0.3), tri(0.72, 0, 0.3, 0.32, 90), rect(-0.85, 0, 0.2, 0.3),
                   tri(0.84, 0, 0.1, 0.08, 90)],
        "magnifier": [ring(-0.2, -0.2, 1.1, 1.1, 0.14), line(0.2, 0.2, 0.85, 0.85, 0.2)],
        "racket": [ring(0, -0.35, 0.9, 1.2, 0.1), line(0, -0.95, 0, 0.25, 0.03),
                   line(-0.45, -0.35, 0.45, -0.35, 0.03), rect(0, 0.65, 0.15, 0.7)],
        "umbrella": [dome(0, -0.35, 1.9, 0.85), line(0, 0.1, 0, 0.75, 0.07),
                     arc(-0.15, 0.75, 0.3, 0.3, 0, 180, 0.07)],
        "book": [rect(0, 0, 1.3, 1.7), rect(-0.58, 0, 0.14, 1.7), rect(0.07, -0.35, 0.7, 0.2)],
        "envelope": [rect(0, 0, 1.8, 1.2), tri(0, -0.2, 1.8, 0.8, 180)],
        "phone": [rect(0, 0, 0.9, 1.7), rect(0, -0.08, 0.72, 1.2), ellipse(0, 0.72, 0.16, 0.16)],
        "television": [rect(0, -0.1, 1.8, 1.2), rect(0, -0.1, 1.5, 0.9), line(-0.1, -0.7, -0.5, -1.0, 0.05),
                       line(0.1, -0.7, 0.5, -1.0, 0.05), rect(0, 0.6, 0.3, 0.2), rect(0, 0.75, 0.9, 0.1)],
        "laptop": [rect(0, -0.35, 1.4, 0.9), rect(0, -0.35, 1.2, 0.7), trap(0, 0.32, 1.8, 0.35, 0.78)],
        "glasses": [ring(-0.5, 0, 0.75, 0.6, 0.1), ring(0.5, 0, 0.75, 0.6, 0.1),
                    arc(0, 0, 0.3, 0.25, 180, 360, 0.07), line(-0.88, -0.05, -1.0, -0.3, 0.06),
                    line(0.88, -0.05, 1.0, -0.3, 0.06)],
        "dumbbell": [rect(0, 0, 1.4, 0.14), rect(-0.6, 0, 0.22, 0.8), rect(0.6, 0, 0.22, 0.8),
                     rect(-0.82, 0, 0.18, 0.55), rect(0.82, 0, 0.18, 0.55)],
        "guitar": [ellipse(0, 0.5, 1.0, 0.85), ellipse(0, -0.05, 0.75, 0.6), rect(0, -0.55, 0.16, 0.9),
                   rect(0, -0.95, 0.26, 0.18), ellipse(0, 0.3, 0.25, 0.25)],
        "drum": [rect(0, 0.2, 1.4, 0.8), ellipse(0, -0.2, 1.4, 0.4), line(-0.5, -0.95, 0.05, -0.3, 0.06),
                 line(0.55, -0.95, 0.1, -0.3, 0.06), line(-0.7, 0.6, 0.7, -0.2, 0.04)],
        "kite": [poly(0, -0.25, 1.1, 1.4, n=4), line(0, -0.95, 0, 0.45, 0.05),
                 line(-0.55, -0.25, 0.55, -0.25, 0.05), arc(0.2, 0.7, 0.4, 0.5, 180, 90, 0.05),
                 poly(0.32, 0.85, 0.25, 0.2, _PENNANT)],
        "balloon": [ellipse(0, -0.3, 1.1, 1.3), tri(0, 0.4, 0.16, 0.12), line(0, 0.45, 0.1, 1.0, 0.05)],
        "flag": [line(-0.7, -1.0, -0.7, 1.0, 0.1), rect(0.05, -0.5, 1.4, 0.9), ellipse(-0.7, -1.0, 0.16, 0.16)],
        "anchor": [rect(0, 0.05, 0.16, 1.4), ring(0, -0.85, 0.35, 0.35, 0.09), rect(0, -0.45, 0.8, 0.12),
                   arc(0, 0.3, 1.4, 1.1, 20, 160, 0.14)],
        "arrow": [rect(-0.2, 0, 1.3, 0.25), tri(0.7, 0, 0.8, 0.6, 90), poly(-0.8, 0, 0.3, 0.55, _PENNANT)],
        "crown": [poly(0, -0.1, 1.7, 1.0, _CROWN), rect(0, 0.5, 1.7, 0.3),
                  *[ellipse(x, -0.62, 0.16, 0.16) for x in (-0.85, 0, 0.85)]],
        "gem": [poly(0, 0, 1.8, 1.5, _GEM), line(-0.9, -0.26, 0.9, -0.26, 0.05), line(-0.3, -0.26, 0, 0.7, 0.04),
                line(0.3, -0.26, 0, 0.7, 0.04)],
        "shield": [poly(0, 0, 1.6, 1.9, _SHIELD), rect(0, -0.05, 0.22, 1.3), rect(0, -0.35, 1.1, 0.22)],
        "heart": [poly(0, 0.05, 1.8, 1.7, _HEART)],
        # animals and figures
        "fish": [ellipse(-0.15, 0, 1.4, 0.8), tri(0.75, 0, 0.7, 0.5, -90), ellipse(-0.5, -0.1, 0.14, 0.14),
                 tri(-0.1, -0.45, 0.35, 0.25)],
        "bird": [ellipse(0, 0.1, 1.2, 0.75), ellipse(-0.55, -0.35, 0.5, 0.5), tri(-0.9, -0.33, 0.16, 0.25, -90),
                 ellipse(0.1, 0.0, 0.7, 0.35, -15), tri(0.75, -0.05, 0.35, 0.5, -90),
                 line(-0.1, 0.45, -0.15, 0.85, 0.05), line(0.15, 0.45, 0.15, 0.85, 0.05)],
        "butterfly": [ellipse(-0.45, -0.3, 0.8, 0.7, -20), ellipse(0.45, -0.3, 0.8, 0.7, 20),
                      ellipse(-0.35, 0.38, 0.55, 0.5), ellipse(0.35, 0.38, 0.55, 0.5), ellipse(0, 0, 0.16, 1.2),
                      line(0, -0.55, -0.3, -0.95, 0.04), line(0, -0.55, 0.3, -0.95, 0.04)],
        "spider": [ellipse(0, 0.15, 0.7, 0.6), ellipse(0, -0.3, 0.4, 0.35), *_legs(0, 0.05, 8, 0.95, 100)],
        "snail": [ellipse(0.15, -0.1, 1.0, 1.0), ring(0.15, -0.1, 0.5, 0.5, 0.08), ellipse(-0.05, 0.45, 1.8, 0.3),
                  line(-0.8, 0.35, -0.95, -0.1, 0.05), line(-0.75, 0.35, -0.65, -0.1, 0.05)],
        "turtle": [dome(0, 0.05, 1.5, 0.95), ellipse(-0.9, 0.35, 0.4, 0.32), ellipse(-0.45, 0.6, 0.3, 0.3),
                   ellipse(0.45, 0.6, 0.3, 0.3), tri(0.85, 0.45, 0.2, 0.2, 90)],
        "cat": [ellipse(0, 0.15, 1.4, 1.2), tri(-0.45, -0.55, 0.45, 0.5, -10), tri(0.45, -0.55, 0.45, 0.5, 10),
                ellipse(-0.3, 0.05, 0.18, 0.22), ellipse(0.3, 0.05, 0.18, 0.22), tri(0, 0.3, 0.16, 0.12, 180),
                line(-0.2, 0.4, -0.95, 0.3, 0.03), line(0.2, 0.4, 0.95, 0.3, 0.03)],
        "owl": [ellipse(0, 0.15, 1.2, 1.6), ring(-0.28, -0.25, 0.42, 0.42, 0.1), ring(0.28, -0.25, 0.42, 0.42, 0.1),
                tri(0, 0.02, 0.18, 0.22, 180), tri(-0.42, -0.75, 0.25, 0.35), tri(0.42, -0.75, 0.25, 0.35),
                dome(0, 0.85, 0.7, 0.2)],
        "snowman": [ellipse(0, 0.5, 1.2, 1.0), ellipse(0, -0.25, 0.85, 0.75), ellipse(0, -0.8, 0.5, 0.42),
                    line(-0.35, -0.25, -0.95, -0.55, 0.06), line(0.35, -0.25, 0.95, -0.55, 0.06)],
        "robot": [rect(0, -0.6, 0.7, 0.5), line(0, -0.85, 0, -1.0, 0.05), rect(0, 0.15, 1.1, 0.9),
                  rect(-0.7, 0.1, 0.22, 0.7), rect(0.7, 0.1, 0.22, 0.7), rect(-0.25, 0.8, 0.22, 0.4),
                  rect(0.25, 0.8, 0.22, 0.4)],
        # sky
        "sun": [star(0, 0, 1.95, 1.95, 12), ellipse(0, 0, 1.1, 1.1)],
        "moon": [poly(-0.1, 0, 1.6, 1.9, _CRESCENT)],
        "star": [star(0, 0.05, 1.9, 1.9, 5)],
        "cloud": [ellipse(-0.5, 0.15, 0.8, 0.65), ellipse(0.05, -0.12, 0.9, 0.85), ellipse(0.55, 0.15, 0.75, 0.6),
                  ellipse(0, 0.3, 1.6, 0.4)],
        "lightning": [poly(0, 0, 1.3, 1.9, _BOLT)],
        "saturn": [ellipse(0, 0, 1.1, 1.1), ring(0, 0, 1.9, 0.45, 0.1, -15)],
    }.items()
}

#: Class names in a fixed order (the order the seeded class sampler draws from).
CLASS_NAMES: tuple[str, ...] = tuple(sorted(CLASSES))
