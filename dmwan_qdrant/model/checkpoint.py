"""Self-contained model bundles: safetensors weights, config, preprocessing, fingerprint.

A bundle is a folder::

    model.safetensors   every tensor of the model (text tower included)
    config.json         {"format": 1, "model": ModelConfig, "preprocessing": ..., "fingerprint": ...,
                         "metadata": {...}}

``load_model`` rebuilds the architecture from the config without downloading anything, loads the
tensors strictly and checks the fingerprint, so a corrupted or truncated bundle is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ModelError
from .config import ModelConfig
from .dmwan import DMWAN
from .bundle import BUNDLE_FORMAT, CONFIG_FILE, WEIGHTS_FILE, read_bundle_record
from .preprocess import preprocessing_record



def _state_for_saving(model: DMWAN, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone each tensor on the CPU.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    return state


def weights_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over tensor names, dtypes, shapes and bytes, in name order (first 16 hex digits)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def model_fingerprint(model: DMWAN) -> str:
    """Fingerprint of a live model's weights (equal to its bundle's after saving)."""
    return weights_fingerprint(model.state_dict())


def save_model(model: DMWAN, path: str | Path, metadata: dict[str, Any] | None = None,
               dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` as a bundle folder at ``path`` (atomically: a crash leaves no half bundle).

    ``dtype`` (``torch.float16``) stores the floating-point tensors in that type, half the size;
    `load_model` casts them back to the model's own type, and the fingerprint is the stored
    tensors'."""
    from safetensors.torch import save_file

    model = getattr(model, "module", model)  # unwrap DDP
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _state_for_saving(model, dtype)
    record = {
        "format": BUNDLE_FORMAT,
        "model": model.config.to_dict(),
        "preprocessing": preprocessing_record(model.config),
        "fingerprint": weights_fingerprint(state),
        "metadata": {**(metadata or {}), "class_names": list(getattr(model, "class_names", []))},
    }
    tmp = _make_temp_dir(path.parent, prefix=f".{path.name}.")
    (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    save_file(state, str(tmp / WEIGHTS_FILE), metadata={"fingerprint": record["fingerprint"]})
    # safetensors writes through a private (0600) temporary file; give the weights the mode the
    # umask gave config.json, which was opened the ordinary way.
    shutil.copymode(tmp / CONFIG_FILE, tmp / WEIGHTS_FILE)
    old = path.with_name(f".{path.name}.old")
    _rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    _rmtree(old)
    return path


def _make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new, uniquely named folder in ``parent`` with the permissions the umask gives.

    Unlike `tempfile.mkdtemp` (always 0700), so that a folder renamed into place afterwards is
    as readable as anything else the user writes, e.g. by the other users of a shared model
    folder. `os.mkdir` applies the umask itself: nothing reads or changes the process's umask.
    """
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            candidate.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name {prefix}* in {parent}")


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> DMWAN:
    """Restore a model saved by :func:`save_model`, exactly.

    Raises:
        CheckpointError: missing, corrupted or truncated files, or weights that do not match the
            recorded fingerprint or architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    record = read_bundle_record(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{path}: missing {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: corrupted or truncated weights ({exc})") from None
    if weights_fingerprint(state) != record.get("fingerprint"):
        raise CheckpointError(f"{weights}: weights do not match the bundle's fingerprint (corrupted?)")
    try:
        config = ModelConfig.from_dict(record["model"])
        model = DMWAN(config, pretrained=None)
    except (ModelError, TypeError) as exc:
        raise CheckpointError(f"{path}: bad model config ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the architecture ({str(exc).splitlines()[0]})") from None
    model.fingerprint = record["fingerprint"]
    model.metadata = record.get("metadata", {})
    class_names = model.metadata.get("class_names") or []
    if class_names:
        model.class_names = list(class_names)
    return model.to(device).eval()
