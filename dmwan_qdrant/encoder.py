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
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, ModelMismatchError, UsageError
from .model.bundle import WEIGHTS_FILE, read_bundle_record
from .model.card import MODEL_SOURCES, card_of, card_summary, toy_warning

if TYPE_CHECKING:  # annotations only: torch loads only with a torch model
    from .model import DMWAN
    from .store import Store


DEVICES = ("cpu", "cuda", "mps")


def default_device() -> str:
    """The best device for a torch model here: ``"cuda"`` when a GPU is visible, else ``"mps"``
    (Apple), else ``"cpu"``."""
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
    """On CPU, run the encoder beside ``leave`` other busy processes (decoding workers).

    torch runs on the cores they do not take: its oversubscribed intra-op threads spin and slow a
    forward pass several times over (measured 3x on 2 cores). An ONNX encoder whose sessions are
    not open yet opens them on every core with spinning off (`OnnxEncoder.session`): a core that
    the workers (at a lower priority, `dmwan_qdrant.ingest.pool`) want is handed over at once,
    and the encoder has it whenever they wait; the shipped model ingests 191 images/s so on 2
    cores against 141 on one thread (BENCHMARKS.md, "Runtimes"). A no-op on a GPU."""
    if model.runtime == "onnx":
        if getattr(model.device, "type", "cpu") == "cpu" and leave and not model.threads:
            model.threads = usable_cores()
        yield
        return
    import torch

    want = max(1, usable_cores() - leave)
    before = torch.get_num_threads()
    if getattr(getattr(model, "device", None), "type", "cpu") != "cpu" or want >= before:
        yield
        return
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bundle_folder(ref: str | Path) -> Path:
    """The folder of a bundle reference: a folder as it is, the shipped model's name
    (``dmwan-sketch``) inside the package, a ``hf-hub:`` name fetched (or found in the hub's
    cache).

    Raises:
        WeightsUnavailableError: a hub name that cannot be fetched.
    """
    from .model.hub import fetch_bundle, is_hub_name
    from .model.shipped import is_shipped_name, shipped_bundle

    if is_shipped_name(ref):
        return shipped_bundle()
    return fetch_bundle(str(ref)) if is_hub_name(str(ref)) else Path(ref).expanduser().resolve()


def load_bundle_record(ref: str | Path) -> dict[str, Any]:
    """The config.json of a bundle reference (see `bundle_folder`), validated, without the weights."""
    return read_bundle_record(bundle_folder(ref))


def load_bundle(path: str | Path, device: str | None = None, runtime: str | None = "auto") -> Any:
    """Load a model bundle, a folder, the shipped model's name or a ``hf-hub:ORG/NAME[@REVISION]``
    name, and remember where it came from (``model.bundle_path``, and ``model.bundle_name`` for a
    name, which a collection records so that another install finds the same bundle).

    ``runtime`` (`dmwan_qdrant.runtime.RUNTIMES`): ``"torch"`` gives a `DMWAN`, ``"onnx"`` an
    `OnnxEncoder` of the bundle's exported graphs, ``"auto"`` the ONNX one when the bundle has
    graphs and onnxruntime is installed. Both embed alike and carry the same record.

    Raises:
        CheckpointError: missing, corrupted or inconsistent bundle.
        WeightsUnavailableError: a hub name that cannot be fetched (with what to pass instead).
        UsageError: a runtime that cannot run here or this bundle (`resolve_runtime`).
    """
    from .model.hub import is_hub_name
    from .model.shipped import is_shipped_name
    from .runtime import has_graphs, resolve_runtime

    name = str(path) if is_hub_name(str(path)) or is_shipped_name(path) else None
    folder = bundle_folder(path)
    read_bundle_record(folder)  # a bad bundle says so before the runtime's choice does
    if resolve_runtime(runtime, folder, device) == "onnx":
        from .runtime.onnx_encoder import OnnxEncoder

        model: Any = OnnxEncoder(folder, device)
    else:
        if not (folder / WEIGHTS_FILE).is_file() and has_graphs(folder):
            raise CheckpointError(f"{folder}: a search-only bundle (ONNX graphs, no {WEIGHTS_FILE}): "
                                  "use --runtime onnx, or the bundle it was exported from")
        from .model import load_model

        model = load_model(folder, device=resolve_device(device))
    model.bundle_path = folder
    model.bundle_name = name
    return model


def has_text_tower(model: Any) -> bool:
    """Whether ``model`` (either runtime) can embed text."""
    return bool(getattr(model, "has_text", getattr(model, "clip", None) is not None))


def fingerprint_of(model: DMWAN) -> str:
    """The model's weights fingerprint; computed once and cached on live (unsaved) models."""
    fp = getattr(model, "fingerprint", None)
    if not fp:
        from .model import model_fingerprint

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
    if getattr(model, "bundle_name", None):
        record["name"] = model.bundle_name  # so that another machine fetches the same bundle
    record.update(card_summary(card_of({"model": model.config.to_dict(), "metadata": getattr(model, "metadata", {})})))
    return record


def model_warning(model: Any) -> str | None:
    """One line when ``model`` never saw a real photo (random weights, or trained on a generated
    benchmark only), naming where a real model comes from; None otherwise."""
    return toy_warning(card_of({"model": model.config.to_dict(), "metadata": getattr(model, "metadata", {})}))


def describe_record(record: dict[str, Any]) -> str:
    """A short human name for a model record: ``preset fingerprint (name or bundle)``."""
    parts = [str(record.get("preset", "?")), str(record.get("fingerprint", "?"))]
    if record.get("name"):
        parts.append(f"({record['name']})")
    elif record.get("bundle"):
        parts.append(f"({record['bundle']})")
    return " ".join(parts)


def check_same_model(collection: str, stored: dict[str, Any], model: DMWAN) -> None:
    """Raise `ModelMismatchError` unless ``model`` is the one recorded with the collection
    (`check_same_record` of its `model_record`)."""
    check_same_record(collection, stored, model_record(model))


def check_same_record(collection: str, stored: dict[str, Any], mine: dict[str, Any]) -> None:
    """Raise `ModelMismatchError` unless the model record ``mine`` is the one recorded with the
    collection as ``stored``: the one check before an encoder writes into or queries a collection.

    Fingerprints decide (the same weights may be saved under several paths); both models are
    named in the message so the user knows which bundle to pass.
    """
    if stored.get("fingerprint") and stored["fingerprint"] == mine.get("fingerprint"):
        return
    if not stored.get("fingerprint") and (
        stored.get("dim") in (None, mine.get("dim")) and stored.get("token_dim") in (None, mine.get("token_dim"))
    ):
        return  # a collection created outside this tool without a fingerprint: sizes must agree
    raise ModelMismatchError(
        f"collection '{collection}' was filled by model {describe_record(stored)}, "
        f"not by {describe_record(mine)}; use that model or another collection"
    )


def collection_bundle(collection: str, stored: dict[str, Any], model_path: str | Path | None = None) -> str | Path:
    """The bundle that encodes for ``collection`` (whose model record is ``stored``):
    ``model_path`` when given, else the recorded bundle folder, else the recorded hub name.

    Raises:
        CheckpointError: no bundle recorded and none given, or the recorded bundle is gone.
    """
    if model_path is not None:
        return model_path
    recorded = stored.get("bundle")
    if recorded and Path(recorded).is_dir():
        return recorded
    if stored.get("name"):
        return stored["name"]  # fetched (or found in the hub's cache) by name
    if not recorded:
        raise CheckpointError(
            f"collection '{collection}' records no model bundle; pass one with --model (a bundle comes from "
            f"{MODEL_SOURCES})"
        )
    raise CheckpointError(
        f"collection '{collection}' was filled by bundle {recorded}, which is gone; "
        "pass the same model with --model"
    )


def load_collection_model(
    store: Store, collection: str, model_path: str | Path | None = None, device: str | None = None,
    runtime: str | None = "auto",
) -> Any:
    """The encoder of ``collection``: its recorded bundle, or ``model_path`` checked against it,
    on ``runtime`` (see `load_bundle`).

    This is the check for a caller that keeps the model (the server, at start-up). A caller
    about to search or ingest may load `collection_bundle` with `load_bundle` instead: the
    searches (`dmwan_qdrant.search`) and the ingest check the model themselves, once.

    Raises:
        CollectionNotFoundError: no such collection.
        CheckpointError: no bundle recorded and none given, or a missing/corrupted bundle.
        ModelMismatchError: the bundle holds other weights than the ones that filled the collection.
    """
    stored = store.get_model_record(collection)
    model = load_bundle(collection_bundle(collection, stored, model_path), device, runtime)
    check_same_model(collection, stored, model)
    return model
