"""The benchmark a run trains on: generated on first use when procedural, optionally capped."""

from __future__ import annotations

from pathlib import Path

from dmwan_qdrant.data import BenchmarkSplit, ProceduralConfig, generate_benchmark, load_benchmark
from dmwan_qdrant.data.benchmarks import OWN_SPLIT, VALIDATION_FILE, read_class_list

from .config import TrainConfig


def prepare_split(cfg: TrainConfig) -> BenchmarkSplit:
    """Load the configured split, generating the procedural benchmark first if it is missing, and
    hold out the validation classes from its seen classes: a folder's own list
    (``zeroshot/validation_classes.txt``, one class a line) when it has one, else a share
    ``data.validation`` drawn by the seed."""
    root = Path(cfg.data.root).expanduser()
    if cfg.data.name == "procedural":
        generate_benchmark(root, ProceduralConfig(**cfg.data.generate))
    split = load_benchmark(cfg.data.name, root, cfg.data.split, unseen=cfg.data.unseen, seed=cfg.seed)
    listed = root / VALIDATION_FILE
    if cfg.data.name in OWN_SPLIT and listed.is_file():
        split = split.hold_out(read_class_list(listed))
    else:
        split = split.hold_out_validation(cfg.data.validation, seed=cfg.seed)
    if cfg.data.max_per_class:
        split = split.limit(cfg.data.max_per_class, seed=cfg.seed)
    return split
