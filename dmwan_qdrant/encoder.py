"""The encoder of a collection: loading a model bundle and the record a collection keeps of it.

A collection is filled by exactly one model. Its record (fingerprint, preset, sizes, bundle path)
is stored with the collection, so that a query loads the same encoder and a different model can
never mix its vectors in silently.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import CheckpointError, ModelMismatchError, UsageError
from .model import DMWAN, load_model, model_fingerprint


DEVICES = ("cpu", "cuda", "mps")


def default_device() -> str:
    """The best device here: ``"cuda"`` when a GPU is visible, else ``"mps"`` (Apple), else ``"cpu"``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def resolve_device(device: str | None) -> str:
    """``device`` checked to exist here (``cuda:1`` too), or `default_device` for None.

    Raises:
        UsageError: an unknown device, or one this machine does not have.
    """
    if device is None:
        return default_device()
    import torch

    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and not index.isdigit()):
        raise UsageError(f"unknown device {device!r}: use {', '.join(DEVICES)} (or cuda:N)")
    if kind == "cuda" and (not torch.cuda.is_available() or int(index or 0) >= torch.cuda.device_count()):
        raise UsageError(f"device {device!r} is not available here (CUDA GPUs visible: {torch.cuda.device_count()})")
    mps = getattr(torch.backends, "mps", None)
    if kind == "mps" and not (mps is not None and mps.is_available()):
        raise UsageError("device 'mps' is not available here (Apple GPUs only)")
    return device


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def encoder_threads(model: Any, leave: int) -> Iterator[None]:
    """On CPU, run the encoder on the cores that ``leave`` other busy processes (decoding
    workers) do not take: oversubscribed intra-op threads spin and slow a forward pass several
    times over (measured 3x on 2 cores). A no-op on a GPU or when there are threads enough."""
    import torch

    before = torch.get_num_threads()
    want = max(1, usable_cores() - leave)
    if getattr(getattr(model, "device", None), "type", "cpu") != "cpu" or want >= before:
        yield
        return
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_bundle(path: str | Path, device: str | None = None) -> DMWAN:
    """Load a model bundle folder and remember where it came from (``model.bundle_path``).

    Raises:
        CheckpointError: missing, corrupted or inconsistent bundle.
    """
    path = Path(path).expanduser().resolve()
    model = load_model(path, device=resolve_device(device))
    model.bundle_path = path
    return model


def fingerprint_of(model: DMWAN) -> str:
    """The model's weights fingerprint; computed once and cached on live (unsaved) models."""
    fp = getattr(model, "fingerprint", None)
    if not fp:
        fp = model_fingerprint(model)
        model.fingerprint = fp
    return fp


def model_record(model: DMWAN) -> dict[str, Any]:
    """The JSON record a collection keeps of the model that fills it."""
    record: dict[str, Any] = {
        "fingerprint": fingerprint_of(model),
        "preset": model.config.name,
        "dim": int(model.config.embed_dim),
        "token_dim": int(model.config.token_dim),
        "num_tokens": int(model.config.num_tokens),
        "image_size": int(model.config.image_size),
    }
    bundle = getattr(model, "bundle_path", None)
    if bundle is not None:
        record["bundle"] = str(bundle)
    return record


def describe_record(record: dict[str, Any]) -> str:
    """A short human name for a model record: ``preset fingerprint (bundle)``."""
    parts = [str(record.get("preset", "?")), str(record.get("fingerprint", "?"))]
    if record.get("bundle"):
        parts.append(f"({record['bundle']})")
    return " ".join(parts)


def check_same_model(collection: str, stored: dict[str, Any], model: DMWAN) -> None:
    """Raise `ModelMismatchError` unless ``model`` is the one recorded with the collection.

    Fingerprints decide (the same weights may be saved under several paths); both models are
    named in the message so the user knows which bundle to pass.
    """
    mine = model_record(model)
    if stored.get("fingerprint") and stored["fingerprint"] == mine["fingerprint"]:
        return
    if not stored.get("fingerprint") and (
        stored.get("dim") in (None, mine["dim"]) and stored.get("token_dim") in (None, mine["token_dim"])
    ):
        return  # a collection created outside this tool without a fingerprint: sizes must agree
    raise ModelMismatchError(
        f"collection '{collection}' was filled by model {describe_record(stored)}, "
        f"not by {describe_record(mine)}; use that model or another collection"
    )


def resolve_collection_model(
    collection: str, stored: dict[str, Any], model_path: str | Path | None = None, device: str | None = None
) -> DMWAN:
    """Load the encoder of a collection from its record, or from ``model_path`` (checked).

    Raises:
        CheckpointError: no bundle recorded and none given, or the recorded bundle is gone.
        ModelMismatchError: the given (or recorded) bundle holds other weights than the record.
    """
    if model_path is None:
        recorded = stored.get("bundle")
        if not recorded:
            raise CheckpointError(
                f"collection '{collection}' records no model bundle; pass one with --model"
            )
        if not Path(recorded).is_dir():
            raise CheckpointError(
                f"collection '{collection}' was filled by bundle {recorded}, which is gone; "
                "pass the same model with --model"
            )
        model_path = recorded
    model = load_bundle(model_path, device)
    check_same_model(collection, stored, model)
    return model
