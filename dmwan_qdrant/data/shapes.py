"""The part vocabulary of the procedural benchmark: primitive shapes and their geometry.

A class of the procedural benchmark is a list of :class:`Part` (see ``classes.py``). Every part
lives in the object frame, x and y in [-1, 1] with y pointing down, and has two renderings:

- ``fill_polygons``: the filled regions a photo paints (rings and arcs are bands, lines are bars);
- ``stroke_paths``: the polylines a sketch draws (outlines, or the centre line of thin parts).
"""

from __future__ import annotations

import math
from typing import NamedTuple

Point = tuple[float, float]

#: Shape kinds a part may have.
KINDS = ("ellipse", "rect", "triangle", "trapezoid", "dome", "polygon", "star", "line", "arc", "ring")

#: Kinds drawn as thin bands: a sketch renders their centre line, not an outline.
STROKE_KINDS = ("line", "arc")


class Part(NamedTuple):
    """One primitive of an object, in the object frame.

    ``w`` and ``h`` are the full extents before rotation; ``rot`` is in degrees, clockwise on
    screen. For a ``line``, ``w`` is the length and ``t`` the thickness; for an ``arc`` or
    ``ring``, ``w`` and ``h`` are the diameters of the centre ellipse and ``t`` the band width.
    """

    kind: str
    x: float
    y: float
    w: float
    h: float
    rot: float = 0.0
    #: polygon: sides (when no ``points``); star: number of points.
    n: int = 0
    #: trapezoid: top width over bottom width.
    taper: float = 1.0
    #: arc: start and end angle in degrees (0 = +x, clockwise on screen).
    a0: float = 0.0
    a1: float = 360.0
    #: line, arc, ring: band thickness in object units.
    t: float = 0.08
    #: polygon: vertices in the unit box [-1, 1]^2 (overrides ``n``).
    points: tuple[Point, ...] = ()

    @property
    def area(self) -> float:
        """A rough visual weight, used to pick the parts an abstract sketch keeps."""
        if self.kind in STROKE_KINDS:
            return self.w * self.t * 2
        return self.w * self.h


def _ellipse(n: int = 36) -> list[Point]:
    return [(math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)) for i in range(n)]


def _regular(n: int) -> list[Point]:
    # first vertex at the top, so a triangle-like polygon stands on its base
    return [(math.sin(2 * math.pi * i / n), -math.cos(2 * math.pi * i / n)) for i in range(n)]


def _star(n: int, inner: float = 0.45) -> list[Point]:
    pts = []
    for i in range(2 * n):
        r = 1.0 if i % 2 == 0 else inner
        a = math.pi * i / n
        pts.append((r * math.sin(a), -r * math.cos(a)))
    return pts


def unit_outline(part: Part) -> list[Point]:
    """Closed outline of a filled kind in the unit box (half-extent 1), before placement."""
    kind = part.kind
    if kind == "ellipse":
        return _ellipse()
    if kind == "rect":
        return [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    if kind == "triangle":
        return [(0, -1), (1, 1), (-1, 1)]
    if kind == "trapezoid":
        top, bottom = min(1.0, part.taper), min(1.0, 1.0 / part.taper)
        return [(-top, -1), (top, -1), (bottom, 1), (-bottom, 1)]
    if kind == "dome":  # half ellipse standing on a flat base at y = +1
        return [(-math.cos(math.pi * i / 18), 1 - 2 * math.sin(math.pi * i / 18)) for i in range(19)]
    if kind == "polygon":
        return list(part.points) if part.points else _regular(max(3, part.n))
    if kind == "star":
        return _star(max(3, part.n or 5))
    raise ValueError(f"{kind!r} has no closed outline")


def _place(part: Part, pts: list[Point], sx: float, sy: float) -> list[Point]:
    """Scale unit points by (sx, sy), rotate by the part's angle, move to its centre."""
    c, s = math.cos(math.radians(part.rot)), math.sin(math.radians(part.rot))
    out = []
    for x, y in pts:
        x, y = x * sx, y * sy
        out.append((x * c - y * s + part.x, x * s + y * c + part.y))
    return out


def _arc_points(a0: float, a1: float, step: float = 10.0) -> list[Point]:
    n = max(2, int(abs(a1 - a0) / step) + 1)
    return [(math.cos(math.radians(a0 + (a1 - a0) * i / (n - 1))),
             math.sin(math.radians(a0 + (a1 - a0) * i / (n - 1)))) for i in range(n)]


def fill_polygons(part: Part) -> list[tuple[list[Point], bool]]:
    """Regions a photo paints, in the object frame: (polygon, True to add / False to cut)."""
    if part.kind == "line":
        half = part.t / 2
        return [(_place(part, [(-1, -half), (1, -half), (1, half), (-1, half)], part.w / 2, 1.0), True)]
    if part.kind == "arc":
        unit = _arc_points(part.a0, part.a1)
        rx, ry, half = part.w / 2, part.h / 2, part.t / 2
        outer = [(x * (rx + half), y * (ry + half)) for x, y in unit]
        inner = [(x * max(rx - half, 0.01), y * max(ry - half, 0.01)) for x, y in reversed(unit)]
        return [(_place(part, outer + inner, 1.0, 1.0), True)]
    if part.kind == "ring":
        unit = _ellipse()
        half = part.t / 2
        outer = _place(part, unit, part.w / 2 + half, part.h / 2 + half)
        inner = _place(part, unit, max(part.w / 2 - half, 0.01), max(part.h / 2 - half, 0.01))
        return [(outer, True), (inner, False)]
    return [(_place(part, unit_outline(part), part.w / 2, part.h / 2), True)]


def stroke_paths(part: Part) -> list[tuple[list[Point], bool]]:
    """Polylines a sketch draws, in the object frame: (points, closed)."""
    if part.kind == "line":
        return [(_place(part, [(-1, 0), (1, 0)], part.w / 2, 1.0), False)]
    if part.kind == "arc":
        closed = abs(part.a1 - part.a0) >= 360
        return [(_place(part, _arc_points(part.a0, part.a1), part.w / 2, part.h / 2), closed)]
    if part.kind == "ring":
        unit = _ellipse()
        half = part.t / 2
        paths = [(_place(part, unit, part.w / 2 + half, part.h / 2 + half), True)]
        if part.t >= 0.15:  # a thick ring (a tyre, a key bow) is drawn with its hole
            paths.append((_place(part, unit, part.w / 2 - half, part.h / 2 - half), True))
        return paths
    return [(_place(part, unit_outline(part), part.w / 2, part.h / 2), True)]


def refit(donor: Part, slot: Part) -> Part:
    """``donor``'s shape moved into ``slot``'s place and size (a part swapped from another class)."""
    return donor._replace(x=slot.x, y=slot.y, w=slot.w, h=slot.h, rot=slot.rot)
