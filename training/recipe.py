"""The config of a run on the user's own data, without a YAML file written first.

``dmwan train --data DIR`` with no model named takes ``efficientnet_lite0`` from its ImageNet
weights when their package is installed (the README's install brings it), else ``tiny``; where
the shipped sketch model is installed too, it fine-tunes that instead when it retrieves the
folder's validation classes better before training (`choose_start`).
``--preset NAME`` (or ``--init BUNDLE``) names the model. Each model takes the recipe of a
shipped config: `folder_efficientnet`'s for the EfficientNet (frozen early stages, strong
augmentation, early stopping), `procedural_tiny`'s for the tiny presets (random towers, from
scratch), `sketchy_split1`'s for the CLIP presets (small learning rate, a tenth of it on the
backbone). The EfficientNet's epochs are sized to the folder (`budget_epochs`). Resources are
this machine's: one worker, on the GPU when there is one, with the cores for its threads and
image decoding.
"""

from __future__ import annotations

from pathlib import Path

from dmwan_qdrant.errors import UsageError

from .config import TrainConfig, shipped_configs

#: The shipped config whose optimisation recipe a preset's run takes.
TINY_RECIPE, PRETRAINED_RECIPE, CNN_RECIPE = "procedural_tiny", "sketchy_split1", "folder_efficientnet"
#: The preset `dmwan train --data` takes when none is named and its weights are installed.
DEFAULT_PRESET = "efficientnet_lite0"
#: Validation classes under which `choose_start` does not compare the two starts. On a folder of
#: real photos with 3 validation classes the comparison chose ImageNet (0.917 against 0.708), and
#: the shipped start then scored higher on the 10 unseen classes after training (0.545 against
#: 0.426, BENCHMARKS.md): a handful of classes is a coin toss.
MIN_COMPARE_CLASSES = 10
#: Training images per epoch of the CNN recipe's budget, and its bounds on the epochs. An epoch
#: is `folder_efficientnet`'s 20 steps of 32 quadruplets, about a minute on 2 CPU cores with its
#: evaluation, so 10 epochs keep a folder of 2,400 images within 15 minutes.
IMAGES_PER_EPOCH, MIN_EPOCHS, MAX_EPOCHS = 80, 4, 10


def recipe_for(preset: str) -> str:
    """The shipped config a ``preset``'s run on folder data borrows its recipe from."""
    stem = Path(preset).stem
    if stem.startswith("tiny"):
        return TINY_RECIPE
    return CNN_RECIPE if stem.startswith("efficientnet") else PRETRAINED_RECIPE


def default_preset() -> str:
    """The model `dmwan train --data` builds when none is named: the EfficientNet where its
    weights package is installed, else the tiny model (random towers)."""
    from dmwan_qdrant.model.convnet import package_weights_available

    return DEFAULT_PRESET if package_weights_available() else "tiny"


def budget_epochs(train_images: int) -> int:
    """Epochs for a folder of ``train_images`` training images (photos and sketches of the
    classes trained on): about one per `IMAGES_PER_EPOCH`, within `MIN_EPOCHS`..`MAX_EPOCHS`;
    early stopping on the validation classes ends it sooner when they stop improving."""
    return max(MIN_EPOCHS, min(MAX_EPOCHS, round(train_images / IMAGES_PER_EPOCH)))


def describe_recipe(cfg: TrainConfig) -> str:
    """One line: the model, its weights and the budget a run chose."""
    m, o = cfg.model, cfg.optim
    from dmwan_qdrant.model.factory import resolve_pretrained

    weights = None if m.init else resolve_pretrained(m.preset, m.pretrained)
    weights = {"package": "ImageNet weights from their pip package", None: "random weights"}.get(
        weights, f"{weights} weights")
    from dmwan_qdrant.model.shipped import SHIPPED_MODEL, shipped_folder

    shipped = m.init and (m.init == SHIPPED_MODEL or Path(m.init) == shipped_folder())
    model = f"fine-tuning {SHIPPED_MODEL if shipped else m.init}" if m.init else f"{m.preset} ({weights})"
    extra = {k: v for k, v in m.overrides.items() if k in ("image_size", "frozen_stages", "augment")}
    details = ", ".join(f"{k} {v}" for k, v in extra.items())
    stop = f", early stop after {o.patience} epochs without a validation gain" if o.patience else ""
    start = f"{m.start}\n" if m.start else ""
    anchors = ""
    if m.init:
        from .loop import finetuned_config

        note = finetuned_config(m.init)[1]
        anchors = f"; {note}" if note else ""
    return (f"{start}recipe: {model}{', ' + details if details else ''}; up to {o.epochs} epochs x {o.steps_per_epoch} "
            f"steps of {o.batch_size}, lr {o.lr:g}{stop}{anchors}")


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

    if preset and init:
        raise UsageError("--data trains either a --preset NAME (from its pretrained towers) or --init BUNDLE "
                         "(fine-tuning it): give one of them")
    if not preset and not init:
        preset = default_preset()
        from dmwan_qdrant.model.shipped import shipped_available, shipped_bundle

        if preset == DEFAULT_PRESET and shipped_available():
            imagenet = folder_config(data, preset, None, None, unseen, name)
            return choose_start(imagenet, folder_config(data, None, None, str(shipped_bundle()), unseen, name))
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
    overrides = {}
    if recipe_for(preset_name) == CNN_RECIPE and gpu:
        overrides["model.overrides"] = {**base.model.overrides, "frozen_stages": 0, "image_size": 224}
    cfg = base.with_overrides(**{
        "name": name or f"{root.name}-{label}",
        "data": {"name": "folder", "root": str(root), "unseen": unseen, "loader_workers": loader_workers},
        "model": {"preset": preset_name, "pretrained": None if init else pretrained,
                  "init": _absolute(init), "overrides": base.model.overrides if not init else {}},
        "scaling": {"workers": 1, "use_gpu": gpu, "cpus_per_worker": float(cores if not gpu else 1),
                    "max_failures": base.scaling.max_failures},
    })
    if recipe_for(preset_name) == CNN_RECIPE:
        from .data import prepare_split

        split = prepare_split(cfg)  # the split the run will train on, validation classes held out
        overrides["optim.epochs"] = budget_epochs(len(split.train_photos) + len(split.train_sketches))
    return cfg.with_overrides(**overrides)


def choose_start(imagenet: TrainConfig, shipped: TrainConfig) -> TrainConfig:
    """Of two runs on the same folder, the one whose starting model retrieves the folder's
    validation classes better (mAP@all before any training): the ImageNet features of
    ``imagenet`` or the shipped sketch model that ``shipped`` fine-tunes. The config it returns
    says which it took, and why, in ``model.start``. With fewer than `MIN_COMPARE_CLASSES`
    validation classes to compare on, the shipped model, which was chosen on validation classes
    of its own: the mAP of a few classes swings with a single query."""
    from dmwan_qdrant.eval.evaluate import evaluate_split
    from dmwan_qdrant.model.shipped import SHIPPED_MODEL

    from .data import prepare_split
    from .loop import build_model

    split = prepare_split(imagenet)
    count = len(split.validation_classes)
    if count < MIN_COMPARE_CLASSES:
        why = ("no validation classes" if not count else
               f"{count} validation class{'es' if count > 1 else ''}, under the {MIN_COMPARE_CLASSES} a fair comparison needs,")
        return shipped.with_overrides(**{"model.start": f"start: {SHIPPED_MODEL}, the shipped sketch model "
                                         f"({why} to compare it with ImageNet features on)"})
    scores = {}
    for label, cfg in (("imagenet", imagenet), ("shipped", shipped)):
        model = build_model(cfg).eval()
        scores[label] = evaluate_split(model, split, classes="validation")["mAP@all"]
    took, other = ("shipped", "imagenet") if scores["shipped"] > scores["imagenet"] else ("imagenet", "shipped")
    chosen = shipped if took == "shipped" else imagenet
    names = {"imagenet": "ImageNet features", "shipped": f"{SHIPPED_MODEL}, the shipped sketch model"}
    line = (f"start: {names[took]} (mAP@all {scores[took]:.3f} before training on the {len(split.validation_classes)} "
            f"validation classes, against {scores[other]:.3f} for {names[other].split(',')[0]})")
    return chosen.with_overrides(**{"model.start": line})


def _absolute(ref: str | None) -> str | None:
    """A bundle reference the Ray workers find wherever they run: folders made absolute; names
(a hub name, the shipped model's) kept, for each worker resolves them in its own install."""
    from dmwan_qdrant.model.hub import is_hub_name
    from dmwan_qdrant.model.shipped import is_shipped_name

    if not ref or is_hub_name(ref) or is_shipped_name(ref):
        return ref
    return str(Path(ref).expanduser().resolve())
