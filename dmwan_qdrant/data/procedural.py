"""The procedural ZS-SBIR benchmark: photos and sketches of object classes built from parts.

The default data of every offline run. Classes (``classes.py``) are everyday objects made of
primitive parts; photos render them filled, shaded and textured on cluttered backgrounds, sketches
as wobbly outlines (``render.py``). A controllable share of samples is low-quality on purpose
(heavily cluttered photos, over-abstract or partly wrong sketches): the samples DMWAN's alignment
weights are meant to discount. The manifest records which ones, so experiments can compare the
learned weights with the truth.

``ProceduralConfig.kind`` picks the benchmark's kind: "objects" (the above, the default) or
"glyphs" (invented symbols made of a few pen strokes, ``glyphs.py``); both share the layout, the
low-quality bookkeeping and the manifest.

The generator writes the layout the benchmark loader reads::

    root/photo/<class>/<n>.png     root/sketch/<class>/<n>.png
    root/zeroshot/seen_classes.txt root/zeroshot/unseen_classes.txt
    root/manifest.json             (written last: its presence means the benchmark is complete)

Every image is a pure function of (seed, class, domain, index), so the same config gives
byte-identical files whatever the number of worker processes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import DatasetError, UsageError
from . import glyphs
from .classes import CLASS_NAMES, CLASSES
from .render import ABSTRACT, CLUTTERED, WRONG_PART, render_photo, render_sketch
from .shapes import Part

#: Bumped whenever rendering changes, so an old benchmark on disk is regenerated, not reused.
GENERATOR_VERSION = 2
_GENERATOR = "dmwan-qdrant procedural benchmark"
_PARTIAL_MARKER = ".generating"
_LOCK = ".lock"
#: Below this many images, rendering stays in the calling process.
_POOL_MIN_IMAGES = 600
MAX_CLASSES = len(CLASS_NAMES)
#: Benchmark kinds: objects made of parts (this module's, the default) or invented glyphs
#: (``glyphs.py``); and the class names and most classes of each.
BENCHMARK_KINDS = ("objects", "glyphs")
_CLASS_NAMES = {"objects": CLASS_NAMES, "glyphs": glyphs.GLYPH_NAMES}

#: ``progress(done_images, total_images)``, called as classes finish.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ProceduralConfig:
    """Settings of a generated benchmark: the same settings give byte-identical files."""

    n_classes: int = 60
    #: Unseen (test) classes: a count, or a fraction of ``n_classes`` when below 1.
    unseen_classes: int | float = 15
    photos_per_class: int = 80
    sketches_per_class: int = 80
    image_size: int = 64
    #: Share of low-quality samples in [0, 1], per class and domain.
    low_quality: float = 0.0
    seed: int = 0
    #: Rendering processes; 0 = one per CPU core. Does not change the output.
    workers: int = 0
    #: "objects" (everyday objects made of parts) or "glyphs" (invented symbols, ``glyphs.py``).
    kind: str = "objects"

    def __post_init__(self) -> None:
        if self.kind not in BENCHMARK_KINDS:
            raise UsageError(f"procedural kind must be one of {', '.join(BENCHMARK_KINDS)}, got {self.kind!r}")
        most = len(_CLASS_NAMES[self.kind])
        if not 2 <= self.n_classes <= most:
            raise UsageError(f"procedural n_classes must be within 2..{most} for kind {self.kind}, "
                             f"got {self.n_classes}")
        if not 1 <= self.n_unseen < self.n_classes:
            raise UsageError(f"procedural unseen_classes must leave 1..{self.n_classes - 1} unseen classes, "
                             f"got {self.unseen_classes}")
        if not 0.0 <= self.low_quality <= 1.0:
            raise UsageError(f"procedural low_quality must be within 0..1, got {self.low_quality}")
        if self.photos_per_class < 1 or self.sketches_per_class < 1:
            raise UsageError("procedural photos_per_class and sketches_per_class must be at least 1")
        if not 16 <= self.image_size <= 512:
            raise UsageError(f"procedural image_size must be within 16..512, got {self.image_size}")

    @property
    def n_unseen(self) -> int:
        """The number of unseen classes."""
        u = self.unseen_classes
        return int(u) if u >= 1 else max(1, round(u * self.n_classes))

    def identity(self) -> dict[str, Any]:
        """The settings that determine the files (everything but ``workers``; ``kind`` only when
        not "objects", so object benchmarks written before kinds existed stay valid)."""
        return {k: v for k, v in asdict(self).items() if k != "workers" and (k != "kind" or v != "objects")}

    @property
    def version(self) -> int:
        """The generator version of this kind (a change regenerates benchmarks of this kind only)."""
        return glyphs.GLYPHS_VERSION if self.kind == "glyphs" else GENERATOR_VERSION


def class_structures(kind: str = "objects") -> dict[str, tuple[Part, ...]] | dict[str, glyphs.Glyph]:
    """The part list (objects) or stroke program (glyphs) of every class, by name."""
    return dict(glyphs.glyph_library()) if kind == "glyphs" else dict(CLASSES)


def choose_classes(config: ProceduralConfig) -> tuple[list[str], list[str]]:
    """The benchmark's (seen, unseen) classes, drawn by ``config.seed``."""
    rng = random.Random(f"classes/{config.seed}")
    classes = sorted(rng.sample(_CLASS_NAMES[config.kind], config.n_classes))
    unseen = sorted(rng.sample(classes, config.n_unseen))
    return [c for c in classes if c not in unseen], unseen


def _low_quality_indices(config: ProceduralConfig, name: str, domain: str, count: int) -> set[int]:
    # An exact share per class and domain (not a coin flip per image), so that small benchmarks
    # hold the share asked for and every class is equally affected.
    rng = random.Random(f"{config.seed}/{name}/{domain}/low-quality")
    return set(rng.sample(range(count), round(config.low_quality * count)))


def _render_job(job: tuple[str, str, str, dict[str, Any], list[str]]) -> dict[str, dict[str, str]]:
    """Render one class in one domain; returns {relative path: low-quality details}."""
    root, name, domain, cfg_fields, classes = job
    config = ProceduralConfig(**cfg_fields)
    count = config.photos_per_class if domain == "photo" else config.sketches_per_class
    bad = _low_quality_indices(config, name, domain, count)
    folder = Path(root) / domain / name
    folder.mkdir(parents=True, exist_ok=True)
    low: dict[str, dict[str, str]] = {}
    for i in range(count):
        rng = random.Random(f"{config.seed}/{name}/{domain}/{i}")
        rel = f"{domain}/{name}/{i:05d}.png"
        if config.kind == "glyphs":
            image, details = glyphs.render_glyph_sample(name, domain, i, i in bad, config.seed, config.image_size,
                                                        classes)
            quality = details["kind"]
        elif domain == "photo":
            parts = CLASSES[name]
            quality = CLUTTERED if i in bad else "ok"
            image = render_photo(parts, rng, config.image_size, quality)
            details = {"kind": quality}
        else:
            parts = CLASSES[name]
            quality = (ABSTRACT if len(parts) == 1 or rng.random() < 0.5 else WRONG_PART) if i in bad else "ok"
            # The donor comes from the benchmark's own classes, as a confusable part would; its
            # own generator keeps the clean images independent of the benchmark's class list.
            donor_rng = random.Random(f"{config.seed}/{name}/{domain}/{i}/donor")
            donor_class = donor_rng.choice([c for c in classes if c != name])
            donor = donor_rng.choice(CLASSES[donor_class])
            image = render_sketch(parts, rng, config.image_size, quality, donor)
            details = {"kind": quality, **({"donor": donor_class} if quality == WRONG_PART else {})}
        image.save(Path(root) / rel, format="PNG", compress_level=1)
        if quality != "ok":
            low[rel] = details
    return low


def _is_complete(root: Path, config: ProceduralConfig) -> bool:
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if (manifest.get("generator"), manifest.get("version"), manifest.get("config")) != (
        _GENERATOR, config.version, config.identity()
    ):
        return False
    if (root / _PARTIAL_MARKER).exists():
        return False
    want = {"photo": config.photos_per_class, "sketch": config.sketches_per_class}
    for domain, count in want.items():
        for name in manifest.get("classes", []):
            folder = root / domain / name
            if not folder.is_dir() or sum(1 for e in os.scandir(folder) if e.name.endswith(".png")) != count:
                return False
    return True


def _assert_ours(root: Path) -> None:
    """Refuse a root that holds anything but a benchmark this generator wrote (or began)."""
    if not root.exists():
        return
    if not root.is_dir():
        raise DatasetError(f"{root} is a file; the procedural benchmark needs a folder")
    entries = {p.name for p in root.iterdir()} - {_LOCK}
    ours = _PARTIAL_MARKER in entries
    if "manifest.json" in entries:
        try:
            ours = ours or json.loads((root / "manifest.json").read_text()).get("generator") == _GENERATOR
        except (OSError, ValueError):
            pass
    if entries and not ours:
        raise DatasetError(f"{root} is not empty and holds no procedural benchmark; refusing to overwrite it "
                           "(give an empty or new folder)")


def _clear(root: Path) -> None:
    """Remove a previous benchmark of this generator."""
    _assert_ours(root)
    for name in ("manifest.json", "photo", "sketch", "zeroshot"):
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def generate_benchmark(root: str | Path, config: ProceduralConfig | None = None,
                       progress: Progress | None = None) -> Path:
    """Write the procedural benchmark under ``root`` and return ``root``.

    Idempotent: a complete benchmark with the same config (and generator version) is kept as it
    is; anything else this generator wrote there is replaced.

    Raises:
        DatasetError: ``root`` is a file, or a non-empty folder that is not a procedural benchmark.
    """
    config = config or ProceduralConfig()
    root = Path(root).expanduser()
    if _is_complete(root, config):
        return root
    _assert_ours(root)
    root.mkdir(parents=True, exist_ok=True)
    # Every training worker prepares its data: the first generates, the others wait and reuse.
    with _exclusive(root):
        if not _is_complete(root, config):
            _generate(root, config, progress)
    return root


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``root`` across processes (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(root / _LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _generate(root: Path, config: ProceduralConfig, progress: Progress | None) -> None:
    """Render every image, then write the split files and, last, the manifest."""
    _clear(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / _PARTIAL_MARKER).write_text(json.dumps(config.identity()))

    seen, unseen = choose_classes(config)
    classes = sorted(seen + unseen)
    jobs = [(str(root), name, domain, asdict(config), classes) for name in classes for domain in ("photo", "sketch")]
    total = len(classes) * (config.photos_per_class + config.sketches_per_class)
    workers = config.workers or os.cpu_count() or 1
    # A pool costs more than it saves on tiny benchmarks (tests, smoke runs).
    workers = 1 if total < _POOL_MIN_IMAGES else min(workers, len(jobs))
    low: dict[str, dict[str, str]] = {}
    done = 0
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_render_job, jobs)
            for job, result in zip(jobs, results):
                low.update(result)
                done += config.photos_per_class if job[2] == "photo" else config.sketches_per_class
                if progress:
                    progress(done, total)
    else:
        for job in jobs:
            low.update(_render_job(job))
            done += config.photos_per_class if job[2] == "photo" else config.sketches_per_class
            if progress:
                progress(done, total)

    (root / "zeroshot").mkdir(exist_ok=True)
    (root / "zeroshot" / "seen_classes.txt").write_text("".join(c + "\n" for c in seen))
    (root / "zeroshot" / "unseen_classes.txt").write_text("".join(c + "\n" for c in unseen))
    manifest = {
        "generator": _GENERATOR,
        "version": config.version,
        "kind": config.kind,
        "config": config.identity(),
        "classes": classes,
        "seen_classes": seen,
        "unseen_classes": unseen,
        "counts": {"photo": config.photos_per_class * len(classes), "sketch": config.sketches_per_class * len(classes)},
        # Relative paths of the deliberately bad samples, and how each is bad.
        "low_quality": sorted(low),
        "low_quality_details": {k: low[k] for k in sorted(low)},
        # What each class is made of: its parts, or its glyph's stroke program.
        "structures": {name: [p.to_dict() for p in glyphs.glyph_library()[name]] for name in classes}
        if config.kind == "glyphs" else {name: [p._asdict() for p in CLASSES[name]] for name in classes},
    }
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / "manifest.json")
    (root / _PARTIAL_MARKER).unlink()


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a generated benchmark (config, classes, low-quality samples).

    Raises:
        DatasetError: no readable manifest under ``root``.
    """
    path = Path(root).expanduser() / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: no readable procedural manifest ({exc.__class__.__name__})") from None
