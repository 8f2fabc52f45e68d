"""Vector storage in Qdrant: one `Store` interface over an embedded engine, a server, and memory.

>>> from dmwan_qdrant.store import open_store, CollectionSpec
>>> with open_store(memory=True) as store:
...     store.create_collection("shoes", CollectionSpec(dim=512, token_dim=128, model={}))

The package loads its parts on first use: importing `dmwan_qdrant.store.index` for the index
defaults (the CLI's help does) loads neither numpy nor an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dmwan_qdrant.lazy import lazy_attributes

if TYPE_CHECKING:
    from dmwan_qdrant.store.base import Store
    from dmwan_qdrant.store.choosing import choose_collection
    from dmwan_qdrant.store.edge import EdgeStore
    from dmwan_qdrant.store.factory import create_collection, default_store_path, open_store
    from dmwan_qdrant.store.index import IndexSettings
    from dmwan_qdrant.store.records import CollectionInfo, CollectionSpec, Hit, PhotoPoint, StoredPoint
    from dmwan_qdrant.store.server import MemoryStore, ServerStore

_HOMES = {
    "Store": "base",
    "choose_collection": "choosing",
    "EdgeStore": "edge",
    "create_collection": "factory",
    "default_store_path": "factory",
    "open_store": "factory",
    "IndexSettings": "index",
    "CollectionInfo": "records",
    "CollectionSpec": "records",
    "Hit": "records",
    "PhotoPoint": "records",
    "StoredPoint": "records",
    "MemoryStore": "server",
    "ServerStore": "server",
}

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
    "choose_collection",
    "create_collection",
    "default_store_path",
    "open_store",
]


__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
