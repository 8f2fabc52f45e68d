"""Benchmarks: the procedural generator, the real-benchmark loaders, and torch datasets.

The torch datasets are imported lazily, so that generating or listing a benchmark (and the
generator's worker processes) does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

from .benchmarks import LAYOUTS, SPLIT_FILES, Layout, load_benchmark, normalise_class_name, split_classes
from .classes import CLASS_NAMES, CLASSES
from .glyphs import (
    GLYPH_NAMES,
    MAX_GLYPH_CLASSES,
    WRONG_STROKE,
    Stroke,
    glyph_drawing,
    glyph_library,
    render_glyph_photo,
    render_glyph_sketch,
)
from .layout import BenchmarkSplit, Sample
from .procedural import (
    BENCHMARK_KINDS,
    GENERATOR_VERSION,
    ProceduralConfig,
    choose_classes,
    class_structures,
    generate_benchmark,
    read_manifest,
)
from .render import ABSTRACT, CLUTTERED, WRONG_PART, render_photo, render_sketch, silhouette
from .shapes import KINDS, Part

if TYPE_CHECKING:
    from .datasets import ImageDataset, QuadrupletDataset

__all__ = [
    "ABSTRACT",
    "BENCHMARK_KINDS",
    "CLASSES",
    "CLASS_NAMES",
    "CLUTTERED",
    "GENERATOR_VERSION",
    "GLYPH_NAMES",
    "KINDS",
    "LAYOUTS",
    "MAX_GLYPH_CLASSES",
    "SPLIT_FILES",
    "WRONG_PART",
    "WRONG_STROKE",
    "BenchmarkSplit",
    "ImageDataset",
    "Layout",
    "Part",
    "ProceduralConfig",
    "QuadrupletDataset",
    "Sample",
    "Stroke",
    "choose_classes",
    "class_structures",
    "generate_benchmark",
    "glyph_drawing",
    "glyph_library",
    "load_benchmark",
    "normalise_class_name",
    "read_manifest",
    "render_glyph_photo",
    "render_glyph_sketch",
    "render_photo",
    "render_sketch",
    "silhouette",
    "split_classes",
]


__getattr__, __dir__ = lazy_attributes(__name__, {"ImageDataset": "datasets", "QuadrupletDataset": "datasets"})
