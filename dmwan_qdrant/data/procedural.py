"""A procedural ZS-SBIR benchmark: photos and sketches of object classes built from parts.

Each class is a fixed arrangement of 2-4 parts (ellipses, boxes, triangles, stars, ...). A photo
renders the parts filled, shaded, textured and coloured at a random pose and scale on a cluttered
background; a sketch renders their outlines as jittered strokes of varied width, with some strokes
missing. A share of samples is low-quality on purpose: over-abstract or partly wrong sketches and
heavily cluttered photos, which is what DMWAN's weighting is for. Colour is drawn per sample, so
only structure tells classes apart.

The generator writes the layout the real-benchmark loader reads::

    root/photo/<class>/<n>.png   root/sketch/<class>/<n>.png
    root/zeroshot/seen_classes.txt   root/zeroshot/unseen_classes.txt   root/manifest.json
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw, ImageFilter

#: Names of the generated object classes (their structures come from CLASS_STRUCTURE_SEED).
CLASS_NAMES = (
    "anvil", "arch", "badge", "balloon", "banner", "barrel", "beacon", "bell", "bench", "blimp",
    "boat", "bottle", "bridge", "brooch", "bucket", "buoy", "cactus", "candle", "cart", "castle",
    "chalice", "chair", "clock", "cloud", "comet", "compass", "crown", "cup", "drum", "easel",
    "fan", "flag", "flower", "fountain", "gate", "gem", "glider", "hammer", "helmet", "hourglass",
    "house", "kettle", "key", "kite", "ladder", "lamp", "lantern", "lighthouse", "lock", "mask",
    "mushroom", "owl", "pagoda", "rocket", "robot", "sailboat", "shield", "snowman", "spade", "tent",
    "torch", "tower", "tractor", "tree", "trophy", "truck", "umbrella", "vase", "windmill", "yacht",
)
MAX_CLASSES = len(CLASS_NAMES)
CLASS_STRUCTURE_SEED = 20251101
SHAPES = ("ellipse", "box", "triangle", "star", "diamond", "hexagon", "bar", "arc", "cross", "trapezoid")


@dataclass(frozen=True)
class ProceduralConfig:
    """Settings of a generated benchmark (same settings, byte-identical files)."""

    n_classes: int = 60
    unseen_classes: int = 15
    photos_per_class: int = 40
    sketches_per_class: int = 40
    image_size: int = 64
    #: Share of low-quality samples (abstract or wrong sketches, cluttered photos), 0-1.
    low_quality: float = 0.0
    seed: int = 0
    #: Processes used for rendering; 0 = all cores.
    workers: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.n_classes <= MAX_CLASSES:
            raise ValueError(f"n_classes must be within 2..{MAX_CLASSES}")
        if not 1 <= self.unseen_classes < self.n_classes:
            raise ValueError("unseen_classes must be at least 1 and fewer than n_classes")
        if not 0.0 <= self.low_quality <= 1.0:
            raise ValueError("low_quality must be within 0..1")


Part = tuple[str, float, float, float, float, float]  # shape, cx, cy, w, h, rotation (radians)


def class_structures() -> dict[str, list[Part]]:
    """The part layout of every class name; fixed, independent of any benchmark seed."""
    rng = random.Random(CLASS_STRUCTURE_SEED)
    structures: dict[str, list[Part]] = {}
    for name in CLASS_NAMES:
        n_parts = rng.choice((2, 3, 3, 4))
        parts: list[Part] = []
        # A main body, then parts attached around it: structure, not colour, is the class.
        body = (rng.choice(SHAPES[:6] + ("trapezoid",)), 0.0, rng.uniform(-0.1, 0.15),
                rng.uniform(0.5, 0.9), rng.uniform(0.4, 0.9), rng.choice((0.0, 0.0, math.pi / 4)))
        parts.append(body)
        for _ in range(n_parts - 1):
            angle = rng.uniform(0, 2 * math.pi)
            dist = rng.uniform(0.35, 0.6)
            parts.append((rng.choice(SHAPES), dist * math.cos(angle), dist * math.sin(angle),
                          rng.uniform(0.15, 0.45), rng.uniform(0.15, 0.45), rng.uniform(0, math.pi)))
        structures[name] = parts
    return structures


def _outline(shape: str, n: int = 24) -> list[tuple[float, float]]:
    """Closed outline of a unit shape centred at 0 (half-size 1), or an open stroke for bar/arc."""
    if shape == "ellipse":
        return [(math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)) for i in range(n)]
    if shape == "box":
        return [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    if shape == "triangle":
        return [(0, -1), (1, 1), (-1, 1)]
    if shape == "diamond":
        return [(0, -1), (1, 0), (0, 1), (-1, 0)]
    if shape == "hexagon":
        return [(math.cos(math.pi / 3 * i), math.sin(math.pi / 3 * i)) for i in range(6)]
    if shape == "trapezoid":
        return [(-0.5, -1), (0.5, -1), (1, 1), (-1, 1)]
    if shape == "star":
        return [((1.0 if i % 2 == 0 else 0.45) * math.cos(math.pi / 5 * i - math.pi / 2),
                 (1.0 if i % 2 == 0 else 0.45) * math.sin(math.pi / 5 * i - math.pi / 2)) for i in range(10)]
    if shape == "cross":
        a = 0.35
        return [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]
    if shape == "bar":
        return [(-1, -0.2), (1, -0.2), (1, 0.2), (-1, 0.2)]
    if shape == "arc":  # a thick crescent
        outer = [(math.cos(math.pi * i / 12), -math.sin(math.pi * i / 12)) for i in range(13)]
        inner = [(0.6 * x, 0.6 * y) for x, y in reversed(outer)]
        return outer + inner
    raise ValueError(shape)


def _place(part: Part, pose: tuple[float, float, float, float], size: float) -> list[tuple[float, float]]:
    shape, cx, cy, w, h, rot = part
    angle, scale, tx, ty = pose
    pts = []
    for x, y in _outline(shape):
        x, y = x * w / 2, y * h / 2
        x, y = x * math.cos(rot) - y * math.sin(rot) + cx, x * math.sin(rot) + y * math.cos(rot) + cy
        x, y = x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)
        pts.append(((x * scale + tx + 1) * size / 2, (y * scale + ty + 1) * size / 2))
    return pts


def _random_pose(rng: random.Random) -> tuple[float, float, float, float]:
    return (rng.uniform(-0.45, 0.45), rng.uniform(0.9, 1.3), rng.uniform(-0.12, 0.12), rng.uniform(-0.12, 0.12))


def _colour(rng: random.Random, lo: int = 30, hi: int = 230) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def render_photo(parts: list[Part], rng: random.Random, size: int, low_quality: bool) -> Image.Image:
    """A filled, shaded, textured object at a random pose on a cluttered background."""
    big = size * 2
    bg = _colour(rng, 120, 250)
    img = Image.new("RGB", (big, big), bg)
    draw = ImageDraw.Draw(img)
    # background texture and clutter; low-quality photos get much more, some drawn over the object
    for _ in range(rng.randint(3, 7) + (12 if low_quality else 0)):
        x, y, r = rng.uniform(0, big), rng.uniform(0, big), rng.uniform(2, big / 6)
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=_colour(rng, 90, 250))
        else:
            draw.line((x, y, rng.uniform(0, big), rng.uniform(0, big)), fill=_colour(rng), width=rng.randint(1, 4))
    pose = _random_pose(rng)
    base = _colour(rng)
    texture = rng.choice(("plain", "stripes", "dots"))
    for i, part in enumerate(parts):
        pts = _place(part, pose, big)
        shade = 1.0 - 0.12 * i
        fill = tuple(int(c * shade) for c in (base if i == 0 or rng.random() < 0.5 else _colour(rng)))
        mask = Image.new("L", (big, big), 0)
        ImageDraw.Draw(mask).polygon(pts, fill=255)
        layer = Image.new("RGB", (big, big), fill)
        ld = ImageDraw.Draw(layer)
        # lighting: a darker lower band, then the texture
        ld.rectangle((0, big * rng.uniform(0.5, 0.7), big, big), fill=tuple(int(c * 0.75) for c in fill))
        if texture == "stripes":
            step = rng.randint(5, 9)
            for k in range(-big, big, step):
                ld.line((k, 0, k + big, big), fill=tuple(min(255, c + 45) for c in fill), width=2)
        elif texture == "dots":
            for _ in range(25):
                x, y = rng.uniform(0, big), rng.uniform(0, big)
                ld.ellipse((x - 2, y - 2, x + 2, y + 2), fill=tuple(max(0, c - 50) for c in fill))
        img.paste(layer, mask=mask)
        draw.polygon(pts, outline=tuple(max(0, c - 70) for c in fill))
    if low_quality:
        for _ in range(rng.randint(2, 4)):  # occluders over the object
            x, y, r = rng.uniform(big * 0.2, big * 0.8), rng.uniform(big * 0.2, big * 0.8), rng.uniform(big / 10, big / 5)
            draw.rectangle((x - r, y - r, x + r, y + r), fill=_colour(rng, 60, 250))
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _jittered(pts: list[tuple[float, float]], rng: random.Random, amount: float, closed: bool = True) -> list[tuple[float, float]]:
    """Resample a polyline densely and wobble it like a hand-drawn stroke."""
    loop = pts + [pts[0]] if closed else pts
    out = []
    phase, freq = rng.uniform(0, 6.28), rng.uniform(0.2, 0.5)
    for (x0, y0), (x1, y1) in zip(loop, loop[1:]):
        steps = max(2, int(math.hypot(x1 - x0, y1 - y0) / 4))
        for s in range(steps):
            t = s / steps
            k = len(out)
            out.append((x0 + (x1 - x0) * t + amount * math.sin(phase + freq * k) + rng.gauss(0, amount / 3),
                        y0 + (y1 - y0) * t + amount * math.cos(phase + 1.3 * freq * k) + rng.gauss(0, amount / 3)))
    out.append(out[0] if closed else loop[-1])
    return out


def render_sketch(parts: list[Part], rng: random.Random, size: int, low_quality: bool, wrong_part: Part | None) -> Image.Image:
    """A black-on-white line drawing of the parts' outlines, hand-drawn in feel."""
    big = size * 2
    img = Image.new("RGB", (big, big), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    pose = _random_pose(rng)
    width = rng.randint(2, 4)
    jitter = rng.uniform(0.6, 2.0) * (2.5 if low_quality else 1.0)
    chosen = list(parts)
    if low_quality:
        if wrong_part is not None and rng.random() < 0.5:
            chosen[rng.randrange(len(chosen))] = wrong_part  # partly wrong
        else:
            chosen = chosen[: max(1, len(chosen) // 2)]  # over-abstract
    else:
        keep = [p for p in chosen if rng.random() > 0.12]
        chosen = keep or chosen[:1]  # missing strokes, never all of them
    for part in chosen:
        pts = _jittered(_place(part, pose, big), rng, jitter)
        if rng.random() < 0.25:  # a stroke left unfinished
            pts = pts[: int(len(pts) * rng.uniform(0.6, 0.9))]
        draw.line(pts, fill=(0, 0, 0), width=width, joint="curve")
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _render_class(job: tuple) -> list[str]:
    """Render all images of one class; returns the relative paths of its low-quality files."""
    root, name, index, cfg_dict, structures = job
    cfg = ProceduralConfig(**cfg_dict)
    parts = structures[name]
    others = [p for n, ps in structures.items() if n != name for p in ps]
    low: list[str] = []
    for domain, count in (("photo", cfg.photos_per_class), ("sketch", cfg.sketches_per_class)):
        folder = Path(root) / domain / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(count):
            rng = random.Random(f"{cfg.seed}/{name}/{domain}/{n}")
            bad = rng.random() < cfg.low_quality
            if domain == "photo":
                img = render_photo(parts, rng, cfg.image_size, bad)
            else:
                img = render_sketch(parts, rng, cfg.image_size, bad, rng.choice(others))
            rel = f"{domain}/{name}/{n:04d}.png"
            img.save(Path(root) / rel, optimize=False)
            if bad:
                low.append(rel)
    return low


def generate_benchmark(
    root: str | Path, config: ProceduralConfig = ProceduralConfig(), progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write the benchmark under ``root``; a complete one with the same config is kept as is."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    wanted = {k: v for k, v in asdict(config).items() if k != "workers"}
    if manifest_path.is_file():
        try:
            if json.loads(manifest_path.read_text()).get("config") == wanted:
                return root
        except json.JSONDecodeError:
            pass
    # Regenerate from scratch: a partial or different benchmark must not leak into this one.
    for sub in ("photo", "sketch", "zeroshot", "manifest.json"):
        target = root / sub
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    structures = class_structures()
    rng = random.Random(config.seed)
    classes = sorted(rng.sample(CLASS_NAMES, config.n_classes))
    unseen = sorted(rng.sample(classes, config.unseen_classes))
    seen = [c for c in classes if c not in unseen]
    jobs = [(str(root), name, i, asdict(config), structures) for i, name in enumerate(classes)]
    workers = config.workers or os.cpu_count() or 1
    low: list[str] = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for done, result in enumerate(pool.map(_render_class, jobs), 1):
                low += result
                progress and progress(done, len(jobs))
    else:
        for done, job in enumerate(jobs, 1):
            low += _render_class(job)
            progress and progress(done, len(jobs))
    (root / "zeroshot").mkdir(exist_ok=True)
    (root / "zeroshot" / "seen_classes.txt").write_text("\n".join(seen) + "\n")
    (root / "zeroshot" / "unseen_classes.txt").write_text("\n".join(unseen) + "\n")
    manifest = {"config": wanted, "classes": classes, "seen": seen, "unseen": unseen, "low_quality": sorted(low),
                "structures": {n: structures[n] for n in classes}}
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, manifest_path)  # written last: its presence means the benchmark is complete
    return root
