"""The ONNX graphs of a bundle: where they lie and the manifest that vouches for them (no torch).

An exported bundle holds, beside its weights::

    onnx/manifest.json   {"format": 1, "fingerprint": the bundle's, "quantize": null | "int8",
                          "graphs": {"visual": {...}, "text": {...}}, "check": {...}}
    onnx/visual.onnx     images (B, 3, S, S) float32 + domains (B,) int64 (0 photo, 1 sketch)
                         -> global (B, D), tokens (B, n, d), both L2-normalised
    onnx/text.onnx       token ids (B, context) int64 -> (B, D), L2-normalised (text tower only)
    onnx/bpe_vocab.txt.gz  the CLIP tokenizer's merges (text tower only)

The manifest carries the bundle's weights fingerprint, so a collection filled through either
runtime is searched through the other; a manifest of other weights is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..model.bundle import CONFIG_FILE

ONNX_DIR = "onnx"
MANIFEST = "manifest.json"
VISUAL = "visual"
TEXT = "text"
VOCAB_FILE = "bpe_vocab.txt.gz"
ONNX_FORMAT = 1


def graph_folder(bundle: str | Path) -> Path:
    return Path(bundle) / ONNX_DIR


def has_graphs(bundle: str | Path) -> bool:
    """Whether the bundle at ``bundle`` has exported graphs (a manifest)."""
    return (graph_folder(bundle) / MANIFEST).is_file()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """A graph file's manifest entry: its name, size and SHA-256."""
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}


def read_manifest(bundle: str | Path, record: dict[str, Any], verify: bool = False) -> dict[str, Any]:
    """The bundle's ONNX manifest, checked against its config record (``record``).

    Every file the manifest names must be there with its recorded size (``verify``: and its
    SHA-256, which reads every byte), so a truncated copy is refused before onnxruntime reads it.

    Raises:
        CheckpointError: no manifest, a malformed one, one of other weights, a missing,
            truncated or (with ``verify``) changed file.
    """
    folder = graph_folder(bundle)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{bundle}: no ONNX graphs ({ONNX_DIR}/{MANIFEST} is missing)") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ONNX_FORMAT or VISUAL not in manifest.get("graphs", {}):
        raise CheckpointError(f"{path}: not a format-{ONNX_FORMAT} graph manifest")
    if manifest.get("fingerprint") != record.get("fingerprint"):
        raise CheckpointError(
            f"{path}: graphs of other weights ({manifest.get('fingerprint')}) than the bundle's "
            f"{CONFIG_FILE} ({record.get('fingerprint')}); export again"
        )
    entries = list(manifest["graphs"].values()) + ([manifest["tokenizer"]] if manifest.get("tokenizer") else [])
    for entry in entries:
        file = folder / str(entry.get("file"))
        if not file.is_file():
            raise CheckpointError(f"{file}: missing; export the bundle again")
        if file.stat().st_size != entry.get("bytes") or (verify and sha256_of(file) != entry.get("sha256")):
            raise CheckpointError(f"{file}: truncated or changed since the export (corrupted?); export again")
    return manifest
