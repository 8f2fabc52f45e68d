"""Which engine runs a bundle's encoders: PyTorch, or the ONNX graphs exported beside its weights.

``auto`` takes ONNX when the bundle has graphs (`dmwan model export BUNDLE --format onnx`) and
onnxruntime is installed, else torch; except that where torch could run on a GPU (one is
visible, or ``--device cuda`` asks for it) and onnxruntime has no CUDA provider, it keeps torch
on the GPU rather than the graphs on the CPU. With ONNX nothing on the query, serve or ingest path
imports torch, so a search-only install (``pip install 'dmwan-qdrant[search]'``) runs them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .graphs import has_graphs

RUNTIMES = ("auto", "torch", "onnx")
"""The values of ``--runtime``."""

TORCH_INSTALL = "pip install 'dmwan-qdrant[torch]'"
SEARCH_INSTALL = "pip install 'dmwan-qdrant[search]'"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_torch(what: str) -> None:
    """Raise a one-line `UsageError` when PyTorch is not installed: ``what`` needs it."""
    if not installed("torch"):
        raise UsageError(f"{what} needs PyTorch, which is not installed here: {TORCH_INSTALL}")


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process, asked of the driver (no torch import)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def gpu_names() -> list[str]:
    """The NVIDIA GPUs the driver lists (their model names), without importing torch."""
    if not gpu_visible():
        return []
    names = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            text = info.read_text()
        except OSError:
            continue
        model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model:")), "")
        names.append(model or "NVIDIA GPU")
    return names


def _accelerator_only_torch_has(device: str | None) -> bool:
    """Whether torch would run on a GPU here (``device``, or the one visible) that onnxruntime,
    as installed, cannot use (no CUDA provider; Apple's ``mps``)."""
    if device is not None and device.startswith("mps"):
        return True
    if (device or "").startswith("cuda") or (device is None and gpu_visible()):
        import onnxruntime

        return "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
    return False


def resolve_runtime(runtime: str | None, folder: str | Path, device: str | None = None) -> str:
    """``"torch"`` or ``"onnx"`` for the bundle at ``folder`` (see the module's text).

    Raises:
        UsageError: an unknown runtime; ONNX asked for and the bundle has no graphs, or
            onnxruntime is missing; torch needed and not installed.
    """
    runtime = runtime or "auto"
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    graphs = has_graphs(folder)
    if runtime == "onnx" or (runtime == "auto" and graphs and not installed("torch")):
        if not graphs:
            raise UsageError(
                f"bundle {folder} has no ONNX graphs: run `dmwan model export {folder} --format onnx` "
                "(or use --runtime torch)"
            )
        if not installed("onnxruntime"):
            raise UsageError(f"the ONNX runtime needs onnxruntime, which is not installed here: {SEARCH_INSTALL}")
        return "onnx"
    if runtime == "auto" and graphs and installed("onnxruntime"):
        if not (installed("torch") and _accelerator_only_torch_has(device)):
            return "onnx"
    if not installed("torch"):
        if graphs:  # --runtime torch
            raise UsageError(f"--runtime torch needs PyTorch, which is not installed here: {TORCH_INSTALL} "
                             "(this bundle has ONNX graphs: --runtime onnx runs them)")
        raise UsageError(
            f"bundle {folder} has no ONNX graphs and PyTorch is not installed here: {TORCH_INSTALL}, "
            f"or export the bundle where torch is (`dmwan model export BUNDLE --format onnx`)"
        )
    return "torch"


def as_array(values: Any) -> np.ndarray:
    """Vectors of either runtime as a float32 numpy array (a torch tensor is moved to the CPU)."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float32, copy=False)
    return values.detach().float().cpu().numpy()
