"""Benchmarks: the procedural generator, real-benchmark loaders, and torch datasets."""

from .benchmarks import LAYOUTS, load_benchmark, normalise_class_name, split_classes
from .datasets import ImageDataset, QuadrupletDataset
from .layout import BenchmarkSplit, Sample
from .procedural import CLASS_NAMES, ProceduralConfig, class_structures, generate_benchmark

__all__ = [
    "CLASS_NAMES",
    "LAYOUTS",
    "BenchmarkSplit",
    "ImageDataset",
    "ProceduralConfig",
    "QuadrupletDataset",
    "Sample",
    "class_structures",
    "generate_benchmark",
    "load_benchmark",
    "normalise_class_name",
    "split_classes",
]
