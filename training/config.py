"""Training configuration: one dataclass per concern, read from a YAML or JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from dmwan_qdrant.errors import UsageError


def shipped_configs() -> dict[str, Path]:
    """The configs that ship with the package, by name (``procedural_tiny``, ``sketchy_split1``...)."""
    from importlib import resources

    folder = Path(str(resources.files("dmwan_qdrant.training") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def describe_config(path: Path) -> str:
    """The first sentence of a config's header comment."""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    text = " ".join(header)
    return text.split(". ")[0].rstrip(".")


def resolve_config(ref: str | Path) -> Path:
    """A config file: ``ref`` itself when it is a file, else the shipped config of that name.

    Raises:
        UsageError: neither, with the shipped names.
    """
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = path.name[: -len(path.suffix)] if path.suffix in (".yaml", ".yml", ".json") else path.name
    if name in shipped and path.parent == Path("."):  # a bare name, never a mistyped path
        return shipped[name]
    raise UsageError(f"config file not found: {ref} (shipped configs: {', '.join(shipped)}; see `dmwan configs`)")


@dataclass
class DataSection:
    """Which benchmark to train and score on."""

    #: "folder" (your own photo/<class>/ and sketch/<class>/), "procedural", "sketchy",
    #: "tuberlin" or "quickdraw".
    name: str = "procedural"
    root: str = "data/procedural"
    #: Benchmark split ("1" or "2" for Sketchy); None for the others.
    split: str | None = None
    #: For "folder": hold out this many classes, drawn by the seed, instead of the ones listed in
    #: zeroshot/unseen_classes.txt; 0 = the list.
    unseen: int = 0
    #: For "procedural": generator settings (ProceduralConfig fields); generated if missing.
    generate: dict[str, Any] = field(default_factory=dict)
    #: Share of the seen classes held out as validation classes (drawn by the run's seed, never
    #: trained on): the checkpoint is chosen on them. 0 = none (the last epoch is kept).
    validation: float = 0.15
    #: Cap images per class (train and test) for quick runs; 0 = all.
    max_per_class: int = 0
    #: DataLoader decoding workers per training worker.
    loader_workers: int = 0


@dataclass
class ModelSection:
    """Which model to train."""

    preset: str = "tiny"
    #: open_clip tag ("openai"), a local weights file, "hub" (timm), or null for random init.
    pretrained: str | None = None
    text_pretrained: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Fine-tune this bundle (a folder or hf-hub:ORG/NAME) instead of building ``preset``.
    init: str | None = None
    #: Why the run starts where it does, when `dmwan train --data` chose it (one line, shown
    #: with the recipe).
    start: str | None = None


@dataclass
class OptimSection:
    """Optimisation: AdamW with linear warmup and cosine decay, gradient clipping."""

    epochs: int = 10
    steps_per_epoch: int = 100
    #: Quadruplets per worker per step.
    batch_size: int = 32
    lr: float = 1e-3
    #: Learning rate of the pretrained backbone, as a fraction of lr (fine-tuning keeps it small).
    backbone_lr_scale: float = 1.0
    weight_decay: float = 0.05
    warmup_steps: int = 50
    grad_clip: float = 1.0
    #: Early stopping: end the run once this many epochs in a row have not improved the
    #: validation mAP@all (the exported epoch stays the best one); 0 = run every epoch.
    patience: int = 0


@dataclass
class ScalingSection:
    """Ray Train resources."""

    workers: int = 1
    use_gpu: bool = False
    #: CPUs reserved per worker; fractional values let 2 workers share a 2-core machine.
    cpus_per_worker: float = 1.0
    #: Restarts from the last checkpoint after a worker dies.
    max_failures: int = 1


@dataclass
class TrainConfig:
    """A whole training run."""

    name: str = "dmwan"
    #: Where runs live: <storage_path>/<name>/ holds checkpoints, the model bundle and the plot.
    storage_path: str = "runs"
    seed: int = 0
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimSection = field(default_factory=OptimSection)
    scaling: ScalingSection = field(default_factory=ScalingSection)
    #: Evaluation batch size (images per forward).
    eval_batch_size: int = 128
    #: Testing aid: kill the rank-0 worker once at the start of this epoch (0-based); -1 = never.
    fail_at_epoch: int = -1

    @property
    def run_dir(self) -> Path:
        return Path(self.storage_path).expanduser().resolve() / self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _build(cls, data, "config")

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        """Read a YAML or JSON config file, or a shipped config by name (`shipped_configs`);
        relative data roots resolve against the working dir."""
        path = resolve_config(path)
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:  # YAML and JSON raise different types for the same mistake
            raise UsageError(f"{path}: cannot parse config ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: a config must be a mapping")
        return cls.from_dict(data)

    def with_overrides(self, **dotted: Any) -> "TrainConfig":
        """A copy with fields replaced by dotted keys, e.g. ``{"scaling.workers": 2}``."""
        data = self.to_dict()
        for key, value in dotted.items():
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return TrainConfig.from_dict(data)


def _build(cls, data: dict[str, Any], where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise UsageError(f"unknown {where} keys: {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else None
        if is_dataclass(default) and isinstance(value, dict):
            value = _build(type(default), value, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)
