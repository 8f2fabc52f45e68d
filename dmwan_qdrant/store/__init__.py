"""Vector storage in Qdrant: one `Store` interface over an embedded engine, a server, and memory.

>>> from dmwan_qdrant.store import open_store, CollectionSpec
>>> with open_store(memory=True) as store:
...     store.create_collection("shoes", CollectionSpec(dim=512, token_dim=128, model={}))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dmwan_qdrant.store.base import Store
from dmwan_qdrant.store.factory import create_collection, default_store_path, open_store
from dmwan_qdrant.store.index import IndexSettings
from dmwan_qdrant.store.records import CollectionInfo, CollectionSpec, Hit, PhotoPoint, StoredPoint

if TYPE_CHECKING:
    from dmwan_qdrant.store.edge import EdgeStore
    from dmwan_qdrant.store.server import MemoryStore, ServerStore

__all__ = [
    "CollectionInfo",
    "CollectionSpec",
    "EdgeStore",
    "Hit",
    "IndexSettings",
    "MemoryStore",
    "PhotoPoint",
    "ServerStore",
    "Store",
    "StoredPoint",
    "create_collection",
    "default_store_path",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # The engines load lazily: importing the package for its dataclasses should not load the
    # Rust extension or httpx.
    if name == "EdgeStore":
        from dmwan_qdrant.store.edge import EdgeStore

        return EdgeStore
    if name in ("ServerStore", "MemoryStore"):
        from dmwan_qdrant.store import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
