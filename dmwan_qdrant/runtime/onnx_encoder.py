"""A bundle's encoders on onnxruntime: the inference API of `DMWAN`, in numpy, without torch.

`OnnxEncoder` answers what the search, serve and ingest paths ask of a model (``config``,
``transform``, ``embed_photos``, ``embed_sketches``, ``embed_texts`` and the bundle's record),
so those paths take either runtime. Vectors come back as float32 numpy arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ModelError, UsageError
from ..model.bundle import read_bundle_record
from ..model.config import ModelConfig
from ..model.imageprep import ArrayPreprocess, cpu_chunk
from .graphs import TEXT, VISUAL, graph_folder, read_manifest

DOMAIN_IDS = {"photo": 0, "sketch": 1}


@dataclass
class ArrayEmbeddings:
    """L2-normalised global vectors (B, D) and local tokens (B, n, d), float32 numpy."""

    global_: np.ndarray
    tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.global_.shape[0])


@dataclass(frozen=True)
class Device:
    """Where the graphs run, in the shape the torch paths read (``model.device.type``)."""

    type: str
    index: int = 0

    def __str__(self) -> str:
        return self.type if self.type == "cpu" else f"{self.type}:{self.index}"


def providers_for(device: str | None) -> tuple[Device, list[Any]]:
    """The device and onnxruntime execution providers for ``device`` (None: CUDA when
    onnxruntime's CUDA provider is installed and sees a GPU, else the CPU).

    Raises:
        UsageError: an unknown device, or CUDA asked for without onnxruntime's CUDA provider.
    """
    import onnxruntime as ort

    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    kind, _, index = (device or ("cuda" if cuda else "cpu")).partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise UsageError(f"unknown device {device!r} for the ONNX runtime: use cpu or cuda[:N]")
    if kind == "cpu":
        return Device("cpu"), ["CPUExecutionProvider"]
    if not cuda:
        raise UsageError("device 'cuda' needs onnxruntime's CUDA provider (pip install onnxruntime-gpu), "
                         "or use --runtime torch")
    return Device("cuda", int(index or 0)), [("CUDAExecutionProvider", {"device_id": int(index or 0)}),
                                             "CPUExecutionProvider"]


class OnnxEncoder:
    """The encoders of an exported bundle (see `dmwan_qdrant.runtime.graphs`).

    Sessions open on first use, so loading costs only the manifest read; ``threads`` (default:
    onnxruntime's, one per core) caps the intra-op threads of the sessions opened after it is set.

    Raises:
        CheckpointError: no graphs, a manifest of other weights, missing or truncated files, a
            graph onnxruntime cannot read.
    """

    runtime = "onnx"

    def __init__(self, folder: str | Path, device: str | None = None) -> None:
        self.bundle_path = Path(folder)
        self.bundle_name: str | None = None
        record = read_bundle_record(self.bundle_path)
        self.manifest = read_manifest(self.bundle_path, record)
        try:
            self.config = ModelConfig.from_dict(record["model"])
        except (ModelError, TypeError) as exc:
            raise CheckpointError(f"{folder}: bad model config ({exc})") from None
        self.fingerprint = str(record["fingerprint"])
        self.metadata = record.get("metadata", {})
        self.class_names = list(self.metadata.get("class_names") or [])
        self.device, self._providers = providers_for(device)
        self.threads: int | None = None
        self._sessions: dict[str, Any] = {}
        self._tokenizer = None

    @property
    def has_text(self) -> bool:
        """Whether the bundle has a text tower (text queries)."""
        return TEXT in self.manifest["graphs"]

    @property
    def quantized(self) -> str | None:
        """``"int8"`` for graphs exported with ``--quantize int8``, else None."""
        return self.manifest.get("quantize")

    def session(self, name: str) -> Any:
        """The onnxruntime session of graph ``name`` ("visual" or "text"), opened on first use."""
        if name not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            file = graph_folder(self.bundle_path) / self.manifest["graphs"][name]["file"]
            try:
                self._sessions[name] = ort.InferenceSession(os.fspath(file), options, providers=self._providers)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own, unexported classes
                raise CheckpointError(f"{file}: onnxruntime cannot read it ({str(exc).splitlines()[0]})") from None
        return self._sessions[name]

    def warm(self) -> None:
        """Open every session now (a server does, so that its first search does not pay for it
        and an unreadable graph stops the start-up)."""
        for name in self.manifest["graphs"]:
            self.session(name)

    def transform(self, domain: str, train: bool = False) -> ArrayPreprocess:
        """The preprocessing of ``domain`` images: PIL -> float32 (3, S, S), as the torch path's."""
        if train:
            raise UsageError("an ONNX bundle only embeds; training needs the torch bundle")
        c = self.config
        return ArrayPreprocess(c.image_size, domain, c.mean, c.std)

    def _embed(self, images: Any, domain: str) -> ArrayEmbeddings:
        if not isinstance(images, np.ndarray):
            if hasattr(images, "numpy"):  # a CPU tensor from a caller that has torch
                images = images.numpy()
            else:
                tf = self.transform(domain)
                images = np.stack([tf(im) for im in images])
        images = np.ascontiguousarray(images, dtype=np.float32)
        step = cpu_chunk(images.shape[-1]) if self.device.type == "cpu" else len(images)
        if len(images) <= step:
            return self._run_visual(images, domain)
        # On a CPU, in chunks whose activations stay in the caches (`cpu_chunk`).
        parts = [self._run_visual(images[i:i + step], domain) for i in range(0, len(images), step)]
        return ArrayEmbeddings(global_=np.concatenate([p.global_ for p in parts]),
                               tokens=np.concatenate([p.tokens for p in parts]))

    def _run_visual(self, images: np.ndarray, domain: str) -> ArrayEmbeddings:
        domains = np.full((images.shape[0],), DOMAIN_IDS[domain], dtype=np.int64)
        g, t = self.session(VISUAL).run(None, {"images": images, "domains": domains})
        return ArrayEmbeddings(global_=g, tokens=t)

    def embed_photos(self, images: np.ndarray | Sequence[Any]) -> ArrayEmbeddings:
        """Embed a batch of photos (a preprocessed (B, 3, S, S) array or PIL images)."""
        return self._embed(images, "photo")

    def embed_sketches(self, images: np.ndarray | Sequence[Any]) -> ArrayEmbeddings:
        """Embed a batch of sketches (a preprocessed (B, 3, S, S) array or PIL images)."""
        return self._embed(images, "sketch")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts into the retrieval space, (B, D) float32."""
        if not self.has_text:
            raise UsageError("this model has no text tower, so it cannot search by text")
        if self._tokenizer is None:
            from .tokenizer import ClipTokenizer

            entry = self.manifest["tokenizer"]
            self._tokenizer = ClipTokenizer(graph_folder(self.bundle_path) / entry["file"], entry["context_length"])
        (vectors,) = self.session(TEXT).run(None, {"ids": self._tokenizer(list(texts))})
        return vectors

    def to(self, device: str | None) -> "OnnxEncoder":
        """Run on ``device`` from now on (None: CUDA when onnxruntime has it, else the CPU)."""
        self.device, self._providers = providers_for(device)
        self._sessions = {}
        return self

    def eval(self) -> "OnnxEncoder":
        return self

    def __getstate__(self) -> dict[str, Any]:  # sessions do not pickle: a copy opens its own
        return {**self.__dict__, "_sessions": {}, "_tokenizer": None}

    def __repr__(self) -> str:
        return f"OnnxEncoder({str(self.bundle_path)!r}, preset={self.config.name!r}, device={str(self.device)!r})"
