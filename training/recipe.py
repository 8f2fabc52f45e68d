"""The config of a run on the user's own data, without a YAML file written first.

``dmwan train --data DIR --preset NAME`` (or ``--init BUNDLE``) trains on a ``folder`` dataset
with the recipe of a shipped config: the tiny presets take `procedural_tiny`'s (random towers,
from scratch, on the CPU), the others `sketchy_split1`'s (fine-tuning pretrained CLIP towers:
small learning rate, a tenth of it on the backbone). Resources are this machine's: one worker,
on the GPU when there is one, with the cores for its threads and image decoding.
"""

from __future__ import annotations

from pathlib import Path

from dmwan_qdrant.errors import UsageError

from .config import TrainConfig, shipped_configs

#: The shipped config whose optimisation recipe a preset's run takes.
TINY_RECIPE, PRETRAINED_RECIPE = "procedural_tiny", "sketchy_split1"


def recipe_for(preset: str) -> str:
    """The shipped config a ``preset``'s run on folder data borrows its recipe from."""
    return TINY_RECIPE if Path(preset).stem.startswith("tiny") else PRETRAINED_RECIPE


def folder_config(
    data: str | Path,
    preset: str | None = None,
    pretrained: str | None = None,
    init: str | None = None,
    unseen: int = 0,
    name: str | None = None,
) -> TrainConfig:
    """A run on the folder dataset ``data`` (``photo/<class>/``, ``sketch/<class>/``).

    Args:
        data: the dataset folder.
        preset: the architecture to build (`dmwan_qdrant.model.list_presets`), or None with ``init``.
        pretrained: the preset's backbone weights: an open_clip tag, a weights file, "hub" (timm).
        init: a bundle (folder or ``hf-hub:`` name) to fine-tune instead of a preset.
        unseen: classes to hold out by seed; 0 = those in ``zeroshot/unseen_classes.txt``.
        name: the run name (default: the data folder's name and the model's).

    Raises:
        UsageError: neither ``preset`` nor ``init``, or both.
    """
    import torch

    from dmwan_qdrant.encoder import usable_cores

    if bool(preset) == bool(init):
        raise UsageError("--data trains either a --preset NAME (from its pretrained towers) or --init BUNDLE "
                         "(fine-tuning it): give one of them")
    if init:
        from dmwan_qdrant.encoder import load_bundle_record

        preset_name = str(load_bundle_record(init)["model"].get("name", "custom"))
    else:
        preset_name = str(preset)
    base = TrainConfig.from_file(shipped_configs()[recipe_for(preset_name)])
    root = Path(data).expanduser().resolve()
    gpu = torch.cuda.is_available()
    cores = usable_cores()
    tiny = recipe_for(preset_name) == TINY_RECIPE
    loader_workers = 0 if tiny or not gpu else min(8, max(0, cores - 1))
    label = Path(preset_name).stem + ("-finetuned" if init else "")
    return base.with_overrides(**{
        "name": name or f"{root.name}-{label}",
        "data": {"name": "folder", "root": str(root), "unseen": unseen, "loader_workers": loader_workers},
        "model": {"preset": preset_name if not init else preset_name, "pretrained": None if init else pretrained,
                  "init": _absolute(init)},
        "scaling": {"workers": 1, "use_gpu": gpu, "cpus_per_worker": float(cores if not gpu else 1),
                    "max_failures": base.scaling.max_failures},
    })


def _absolute(ref: str | None) -> str | None:
    """A bundle reference the Ray workers find wherever they run: folders made absolute."""
    from dmwan_qdrant.model.hub import is_hub_name

    if not ref or is_hub_name(ref):
        return ref
    return str(Path(ref).expanduser().resolve())
