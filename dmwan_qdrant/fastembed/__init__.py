"""DMWAN bundles as FastEmbed models, for qdrant-client's own inference API.

``pip install 'dmwan-qdrant[fastembed]'``; no torch, no ``dmwan`` command::

    from qdrant_client import QdrantClient, models
    from dmwan_qdrant.fastembed import register

    name = register("path/to/bundle")  # or SHIPPED_NAME, registered on import
    client = QdrantClient(url="http://localhost:6333")  # or path=..., or ":memory:"
    hits = client.query_points("shoes", query=models.Image(image="sketch.png", model=name,
                               options={"domain": "sketch"}), using="global", limit=10)

``options``: ``domain`` is ``"photo"`` (default) or ``"sketch"``; ``output`` is ``"global"``
(default) or ``"tokens"`` (the local tokens, for the ``tokens`` multivector). A bundle with a text
tower embeds ``models.Document(text=..., model=name)`` too. `collection_model` registers the model
that filled a collection; `collection_params`, `photo_point`,
`sketch_query` and `rerank_query` (`dmwan_qdrant.fastembed.points`) write and search collections
exactly as ``dmwan ingest`` and ``dmwan query`` do; ``docs/qdrant-client.md`` has the layout.
"""

from __future__ import annotations

from pathlib import Path

from ..model.shipped import SHIPPED_MODEL, shipped_available
from . import models as _models  # noqa: F401 - adds the classes to FastEmbed's registries
from .points import collection_model, collection_params, create_collection, photo_point, rerank_query, sketch_query
from .registry import PREFIX, Registered, add, default_name, lookup, registered

#: The FastEmbed name of the shipped sketch model (registered when this module is imported).
SHIPPED_NAME = PREFIX + SHIPPED_MODEL

__all__ = [
    "SHIPPED_NAME", "collection_model", "collection_params", "create_collection", "photo_point", "register", "registered",
    "rerank_query", "sketch_query",
]


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


if shipped_available():
    register(SHIPPED_MODEL)
