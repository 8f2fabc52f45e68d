"""The model card of the bundles a training run writes, and how a run chooses its epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmwan_qdrant.data import BenchmarkSplit
from dmwan_qdrant.model import DMWAN
from dmwan_qdrant.model.card import card_of, new_card, pick_metrics, saw_real_photos, utc_now
from dmwan_qdrant.model.factory import resolve_pretrained

from .config import TrainConfig


def run_card(cfg: TrainConfig, split: BenchmarkSplit, init: DMWAN | None) -> dict[str, Any]:
    """The model card of the bundles this run writes (see `dmwan_qdrant.model.card`), made once
    per run: `epoch_card` fills in the epoch and its metrics."""
    init_ref = None
    if init is not None:
        init_card = card_of({"model": init.config.to_dict(), "metadata": getattr(init, "metadata", {})})
        init_ref = {"fingerprint": init.fingerprint, "name": getattr(init, "bundle_name", None) or str(cfg.model.init),
                    "saw_real_photos": saw_real_photos(init_card)}
    training = {
        "dataset": cfg.data.name, "root": str(Path(cfg.data.root).expanduser().resolve()), "split": cfg.data.split,
        "seen_classes": len(split.seen_classes), "unseen_classes": list(split.unseen_classes),
        "validation_classes": list(split.validation_classes),
        "train_images": {"photos": len(split.train_photos), "sketches": len(split.train_sketches)},
        "epochs": cfg.optim.epochs, "selected_epoch": None,
        "selected_by": selection_rule(split), "run": cfg.name, "seed": cfg.seed,
    }
    preset = init.config.name if init is not None else cfg.model.preset
    pretrained = None if init is not None else resolve_pretrained(cfg.model.preset, cfg.model.pretrained)
    text = None if init is not None else cfg.model.text_pretrained
    return new_card(preset, pretrained, text, init=init_ref, training=training)


def selection_rule(split: BenchmarkSplit) -> str:
    """How a run chooses the epoch it exports, in words (the card's ``selected_by``)."""
    if split.validation_classes:
        return (f"mAP@all on {len(split.validation_classes)} validation classes held out of the seen classes "
                "(never trained on); the unseen test classes are only reported")
    return "the last epoch (no validation classes); the unseen test classes are only reported"


#: Prefix of the validation metrics in an epoch's metrics ("val mAP@all").
VAL = "val "


def selection_score(metrics: dict[str, Any]) -> float | None:
    """The figure an epoch is chosen by: validation mAP@all, or None when there is no validation
    (then the last epoch is kept)."""
    return metrics.get(VAL + "mAP@all")


def epoch_card(card: dict[str, Any], epoch: int, metrics: dict[str, Any],
               rerank: dict[str, Any] | None = None) -> dict[str, Any]:
    """``card`` (from `run_card`) for the bundle of ``epoch``, with that epoch's metrics and its
    re-rank choice (`dmwan_qdrant.eval.rerank.choose_rerank`; None: no validation classes)."""
    validation = {k[len(VAL):]: v for k, v in metrics.items() if k.startswith(VAL)}
    return {**card, "training": {**card["training"], "selected_epoch": epoch},
            "metrics": {"validation": pick_metrics(validation), "test": pick_metrics(metrics)},
            "rerank": rerank, "created": utc_now()}
