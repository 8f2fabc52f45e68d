"""The bundles registered as FastEmbed models: their names, records and shared encoders.

A registered bundle runs on its exported ONNX graphs (`dmwan_qdrant.runtime.OnnxEncoder`), so
neither registering nor embedding needs torch. One encoder per bundle, device and thread count is
shared by every FastEmbed instance that qdrant-client makes of it (one per ``options`` dict).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

#: Every registered name starts with this, in FastEmbed's ``ORG/NAME`` form.
PREFIX = "dmwan/"
#: What ``options={"domain": ...}`` takes: which tower embeds the image.
DOMAINS = ("photo", "sketch")
#: What ``options={"output": ...}`` takes: the global vector, or the local tokens (a multivector).
OUTPUTS = ("global", "tokens")


@dataclass
class Registered:
    """One registered bundle.

    Attributes:
        name: its FastEmbed model name (``dmwan/...``).
        encoder: the bundle's ONNX encoder (sessions open on first use).
        record: the model record a collection keeps of it (`dmwan_qdrant.encoder.model_record`).
    """

    name: str
    encoder: Any
    record: dict[str, Any]
    _encoders: dict[tuple[str, int | None], Any] = field(default_factory=dict, repr=False)

    @property
    def folder(self) -> Path:
        return Path(self.encoder.bundle_path)

    @property
    def dim(self) -> int:
        return int(self.encoder.config.embed_dim)

    @property
    def token_dim(self) -> int:
        return int(self.encoder.config.token_dim)

    @property
    def has_text(self) -> bool:
        return bool(self.encoder.has_text)

    def encoder_for(self, device: str, threads: int | None) -> Any:
        """The bundle's encoder on ``device`` with ``threads`` intra-op threads, shared."""
        key = (device, threads)
        with _LOCK:
            if key not in self._encoders:
                from ..runtime.onnx_encoder import OnnxEncoder

                enc = OnnxEncoder(self.folder, device)
                enc.bundle_name = self.encoder.bundle_name
                enc.threads = threads
                self._encoders[key] = enc
            return self._encoders[key]


_LOCK = threading.Lock()
_REGISTERED: dict[str, Registered] = {}


def default_name(encoder: Any, ref: str | Path) -> str:
    """The name `register` gives a bundle: ``dmwan/<the shipped model's name>`` for it, else
    ``dmwan/<folder or hub name>-<first 8 hex of the weights fingerprint>``."""
    if encoder.bundle_name and not str(encoder.bundle_name).startswith("hf-hub:"):
        return PREFIX + str(encoder.bundle_name)
    base = str(encoder.bundle_name).split("/")[-1].split("@")[0] if encoder.bundle_name else Path(ref).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-") or "bundle"
    return f"{PREFIX}{base}-{str(encoder.fingerprint)[:8]}"


def add(entry: Registered) -> str:
    """Register ``entry``; the same weights under the same name again is a no-op.

    Raises:
        UsageError: the name is taken by other weights.
    """
    key = entry.name.lower()
    with _LOCK:
        known = _REGISTERED.get(key)
        if known is not None and known.record.get("fingerprint") != entry.record.get("fingerprint"):
            raise UsageError(f"FastEmbed model name {entry.name!r} is taken by other weights "
                             f"({known.folder}); pass another name=")
        if known is None:
            _REGISTERED[key] = entry
        return _REGISTERED[key].name


def lookup(name: str) -> Registered:
    """The bundle registered as ``name`` (any case).

    Raises:
        ValueError: nothing registered under that name (FastEmbed's own error type).
    """
    entry = _REGISTERED.get(name.lower())
    if entry is None:
        known = ", ".join(sorted(e.name for e in _REGISTERED.values())) or "none"
        raise ValueError(f"{name!r} is not a registered dmwan model (registered: {known}); "
                         "call dmwan_qdrant.fastembed.register(BUNDLE) first")
    return entry


def registered() -> list[Registered]:
    """Every registered bundle, in registration order."""
    with _LOCK:
        return list(_REGISTERED.values())


def register(bundle: str | Path, name: str | None = None) -> str:
    """Make a bundle's towers a FastEmbed model that qdrant-client embeds with; returns its name.

    Args:
        bundle: a bundle folder with exported ONNX graphs (``dmwan model export BUNDLE --format
            onnx``), the shipped model's name (``dmwan-sketch``) or a ``hf-hub:ORG/NAME`` name.
        name: the FastEmbed name (default: ``dmwan/<folder>-<first 8 hex of the fingerprint>``,
            ``dmwan/dmwan-sketch`` for the shipped model). Registering the same weights again
            returns the same name.

    Raises:
        dmwan_qdrant.errors.UsageError: the bundle has no ONNX graphs (the message names the
            export command), onnxruntime is missing, or the name is taken by other weights.
        dmwan_qdrant.errors.CheckpointError: not a bundle, or a damaged one.
    """
    from ..encoder import load_bundle, model_record

    encoder = load_bundle(bundle, device="cpu", runtime="onnx")
    chosen = name or default_name(encoder, bundle)
    if "/" not in chosen:
        chosen = PREFIX + chosen
    return add(Registered(chosen, encoder, model_record(encoder)))
