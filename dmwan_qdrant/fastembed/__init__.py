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

from ..model.shipped import SHIPPED_MODEL, shipped_available
from . import models as _models  # noqa: F401 - adds the classes to FastEmbed's registries
from .points import collection_model, collection_params, create_collection, photo_point, rerank_query, sketch_query
from .registry import PREFIX, register, registered

#: The FastEmbed name of the shipped sketch model (registered when this module is imported).
SHIPPED_NAME = PREFIX + SHIPPED_MODEL

__all__ = [
    "SHIPPED_NAME", "collection_model", "collection_params", "create_collection", "photo_point", "register", "registered",
    "rerank_query", "sketch_query",
]


if shipped_available():
    register(SHIPPED_MODEL)
