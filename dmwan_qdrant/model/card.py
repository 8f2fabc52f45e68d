"""The model card: what a user needs to judge a bundle, kept in its ``config.json``.

A card is a JSON object under ``metadata.card``::

    preset           the architecture preset ("vit_b16", "tiny", ...)
    pretrained       where the backbone weights came from: an open_clip tag, "hub" (timm), a
                     weights file (name and SHA-256), None for random initialisation
    text_pretrained  the same for a timm backbone's CLIP text tower
    init             the bundle a fine-tuning started from (fingerprint, name), or None
    training         None (the pretrained towers as they are), or the data and the run: dataset,
                     root, split, seen and unseen class counts, epochs, the selected epoch and
                     what selected it, run name, seed
    metrics          {"validation": {...} | None, "test": {...} | None} at the selected epoch
    rerank           whether searches re-rank by default, chosen on the validation classes
                     (`dmwan_qdrant.eval.rerank.choose_rerank`: on, weight, prefetch, the
                     validation figures it was decided on), or None: off unless asked
    created          UTC time the bundle was written (ISO 8601)
    versions         dmwan-qdrant and the libraries the weights were made with

Bundles written before cards existed get one reconstructed from what they recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..versions import installed_versions

#: Libraries whose versions a card records.
CARD_LIBRARIES = ("torch", "open_clip_torch", "timm", "safetensors")
#: The metrics a card keeps per class set (as `dmwan_qdrant.eval.metrics.METRICS`: mAP is the
#: published interpolated convention, "plain" the non-interpolated AP).
CARD_METRICS = ("mAP@all", "P@100", "mAP@200", "P@200", "mAP@all plain", "mAP@200 plain")


def weights_source(source: str | None) -> str | dict[str, str] | None:
    """How a card names a weights source: a tag as it is, a local file by name and SHA-256."""
    if not source:
        return None
    path = Path(str(source)).expanduser()
    if not path.is_file():
        return str(source)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"file": path.name, "sha256": h.hexdigest()}


def new_card(
    preset: str,
    pretrained: str | None = None,
    text_pretrained: str | None = None,
    init: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A card for a bundle written now."""
    from dmwan_qdrant import __version__

    return {
        "preset": preset,
        "pretrained": weights_source(pretrained),
        "text_pretrained": weights_source(text_pretrained),
        "init": init,
        "training": training,
        "metrics": metrics or {"validation": None, "test": None},
        "rerank": None,
        "created": utc_now(),
        "versions": {"dmwan-qdrant": __version__, **installed_versions(CARD_LIBRARIES)},
    }


def utc_now() -> str:
    """The time now, as a card records it (UTC, ISO 8601, whole seconds)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def pick_metrics(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    """The card's metrics out of an epoch's (or an evaluation's) metrics."""
    if not metrics or "mAP@all" not in metrics:
        return None
    return {k: float(metrics[k]) for k in CARD_METRICS if k in metrics}


def card_of(record: dict[str, Any]) -> dict[str, Any]:
    """The card of a bundle record (its config.json), reconstructed for bundles without one."""
    meta = record.get("metadata") or {}
    card = meta.get("card")
    if isinstance(card, dict):
        return card
    training = None
    if meta.get("dataset"):  # a training run's bundle from before cards
        training = {"dataset": meta["dataset"], "split": meta.get("split"), "run": meta.get("run"),
                    "selected_epoch": meta.get("epoch")}
    return {"preset": (record.get("model") or {}).get("name"), "pretrained": None, "text_pretrained": None,
            "init": None, "training": training, "metrics": {"validation": None, "test": None},
            "rerank": None, "created": None, "versions": None}


def write_card(bundle: str | Path, card: dict[str, Any]) -> None:
    """Replace the card in a bundle's config.json (atomically; the weights are not touched)."""
    from .checkpoint import CONFIG_FILE, read_bundle_record

    bundle = Path(bundle)
    record = read_bundle_record(bundle)
    record.setdefault("metadata", {})["card"] = card
    tmp = bundle / f".{CONFIG_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, bundle / CONFIG_FILE)


def source_text(source: Any) -> str:
    """A weights source as one short phrase."""
    if source is None:
        return "random initialisation"
    if isinstance(source, dict):
        return f"file {source.get('file')} (sha256 {str(source.get('sha256', ''))[:12]})"
    if source == "package":
        return "package (ImageNet weights from an installed pip package)"
    return str(source)


def training_text(training: dict[str, Any] | None) -> str:
    """What a bundle was trained on, as one short phrase."""
    if not training:
        return "none (the pretrained towers as they are)"
    data = training.get("dataset", "?")
    if training.get("split"):
        data += f" split {training['split']}"
    if training.get("root") and training.get("dataset") == "folder":
        data += f" {training['root']}"
    epochs = ""
    if training.get("selected_epoch") is not None:
        epochs = f", epoch {training['selected_epoch']}" + (f" of {training['epochs']}" if training.get("epochs") else "")
    return data + epochs


def card_summary(card: dict[str, Any]) -> dict[str, str]:
    """What a collection's model record says of its bundle's card: ``pretrained`` and
    ``trained_on``, one phrase each."""
    return {"pretrained": source_text(card.get("pretrained")), "trained_on": training_text(card.get("training"))}


GENERATED_DATASETS = frozenset({"procedural", "glyphs"})
"""The training sets this project draws itself: no real photo in them."""

MODEL_SOURCES = ("`dmwan model create --preset efficientnet_lite0 -o DIR` (ImageNet weights, offline; "
                 "vit_b16 --pretrained openai for CLIP) or `dmwan train --data DIR` on your own sketches and photos")
"""Where a bundle that knows real photos comes from, as the messages that ask for one name it."""


def saw_real_photos(card: dict[str, Any]) -> bool:
    """Whether a bundle's weights have seen real photos: pretrained towers, a fine-tune of such a
    bundle, or training on a dataset this project did not generate."""
    if card.get("pretrained"):
        return True
    init = card.get("init")
    if isinstance(init, dict):
        return bool(init.get("saw_real_photos", True))  # an older card: the start is unknown, no alarm
    training = card.get("training") or {}
    return bool(training) and training.get("dataset") not in GENERATED_DATASETS


def toy_warning(card: dict[str, Any]) -> str | None:
    """One line for a bundle that never saw a real photo (None for one that did)."""
    if saw_real_photos(card):
        return None
    training = card.get("training") or {}
    why = (f"trained only on the generated {training.get('dataset')} benchmark" if training
           else "random weights, never trained")
    return (f"model {card.get('preset') or '?'} has never seen a real photo ({why}): its results on real photos "
            f"are arbitrary; for a real model use {MODEL_SOURCES}")
