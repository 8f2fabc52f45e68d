"""The manifest of an embedded collection: what it holds, which model filled it, what was ingested.

It is written twice, atomically each time: ``<collection>/collection.json``, which makes the
folder a collection, and a copy inside the shard folder (``shard/dmwan-collection.json``), which
travels with the shard. A collection whose manifest is lost keeps its copy, and
`recover_manifest` puts it back; without the copy, the dims come from the shard's own
``edge_config.json`` and the model record from a bundle the caller names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmwan_qdrant.errors import CollectionNotFoundError, StoreDamagedError, StoreError
from dmwan_qdrant.store.disk import write_atomic
from dmwan_qdrant.store.index import IndexSettings
from dmwan_qdrant.store.records import GLOBAL, TOKENS

MANIFEST = "collection.json"
SHARD_DIR = "shard"
SHARD_MANIFEST = "dmwan-collection.json"
MANIFEST_FORMAT = 1


def new_manifest(
    name: str, dim: int, token_dim: int, model: dict[str, Any], index: IndexSettings
) -> dict[str, Any]:
    """The manifest of a new, empty collection."""
    return {
        "format": MANIFEST_FORMAT,
        "name": name,
        "dim": int(dim),
        "token_dim": int(token_dim),
        "model": model,
        "index": index.to_dict(),
    }


def manifest_index(manifest: dict[str, Any]) -> IndexSettings:
    """The settings a manifest records; a manifest from before they were recorded holds a
    collection of the legacy layout (`dmwan_qdrant.store.index.LEGACY`)."""
    return IndexSettings.from_dict(manifest.get("index"))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write both copies of ``manifest`` for the collection ``folder`` (the shard's first)."""
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"model record of collection '{manifest.get('name')}' is not JSON: {e}") from None
    write_atomic(folder / SHARD_DIR / SHARD_MANIFEST, text)
    write_atomic(folder / MANIFEST, text)


def read_manifest(folder: Path, name: str, not_found: str) -> dict[str, Any]:
    """The manifest of the collection in ``folder``.

    Raises:
        CollectionNotFoundError: no folder of that name (``not_found`` is the message).
        StoreDamagedError: a folder without a readable manifest (it may still hold points).
    """
    file = folder / MANIFEST
    try:
        manifest = json.loads(file.read_text())
    except FileNotFoundError:
        if not (folder / SHARD_DIR).exists():  # nothing of a collection there
            raise CollectionNotFoundError(not_found) from None
        raise StoreDamagedError(damaged_message(folder, name, "has no manifest (collection.json)")) from None
    except (OSError, ValueError) as e:
        raise StoreDamagedError(damaged_message(folder, name, f"has an unreadable manifest ({e})")) from None
    if not isinstance(manifest, dict) or not {"dim", "token_dim", "model"} <= manifest.keys():
        raise StoreDamagedError(damaged_message(folder, name, "has an incomplete manifest"))
    return manifest


def damaged_message(folder: Path, name: str, what: str) -> str:
    """One line naming a damaged collection folder, what is there, and how to recover it."""
    shard = folder / SHARD_DIR
    if (shard / SHARD_MANIFEST).is_file():
        hint = f"`dmwan collections recover {name} --store {folder.parent}` rebuilds it from the shard's copy"
    elif (shard / "edge_config.json").is_file():
        hint = (
            f"`dmwan collections recover {name} --store {folder.parent} --model BUNDLE` rebuilds it "
            "with the bundle that filled it"
        )
    else:
        hint = "it holds no shard either"
    return (
        f"collection folder {folder} {what}; its points are kept: {hint}, "
        f"or move the folder out of the store"
    )


def shard_dims(shard: Path) -> tuple[int, int, IndexSettings]:
    """``(dim, token_dim, index settings)`` from a shard's own configuration file."""
    try:
        config = json.loads((shard / "edge_config.json").read_text())
        vectors = config["vectors"]
        tokens = vectors[TOKENS]
        if "scalar" in (tokens.get("quantization_config") or {}):
            storage = "int8"
        else:
            storage = "float16" if tokens.get("datatype") == "float16" else "float32"
        hnsw = config["hnsw_config"]
        index = IndexSettings(hnsw_m=int(hnsw["m"]), ef_construct=int(hnsw["ef_construct"]), tokens=storage)
        return int(vectors[GLOBAL]["size"]), int(tokens["size"]), index
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StoreDamagedError(f"shard {shard} has no readable configuration ({e})") from None


def recover_manifest(folder: Path, name: str, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rebuild and write the manifest of the collection ``folder`` from what the shard keeps.

    The copy inside the shard is used when it is there; otherwise the dims come from the shard's
    configuration and ``model`` (the record of the bundle that filled the collection) is needed.

    Raises:
        StoreDamagedError: no shard, or neither a copy nor ``model``.
        StoreError: the manifest is already there and readable.
    """
    shard = folder / SHARD_DIR
    if not (shard / "edge_config.json").is_file():
        raise StoreDamagedError(f"collection folder {folder} holds no shard: nothing to recover")
    manifest: dict[str, Any] | None = None
    try:
        manifest = json.loads((shard / SHARD_MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = None
    if manifest is None or not {"dim", "token_dim", "model"} <= set(manifest):
        if model is None:
            raise StoreDamagedError(
                f"collection folder {folder} keeps no copy of its manifest: give the model bundle "
                "that filled it (--model BUNDLE)"
            )
        dim, token_dim, index = shard_dims(shard)
        if (int(model.get("dim", dim)), int(model.get("token_dim", token_dim))) != (dim, token_dim):
            raise StoreDamagedError(
                f"the shard holds vectors of size {dim}/{token_dim}, the model makes "
                f"{model.get('dim')}/{model.get('token_dim')}: it was not filled by this model"
            )
        manifest = new_manifest(name, dim, token_dim, model, index)
    manifest["name"] = name
    write_manifest(folder, manifest)
    return manifest
