"""`EdgeReplacement`: a collection of the embedded store rebuilt beside the old one, swapped in.

The new shard is written in a staging folder of the store (``.creating-<uuid>``) with the new
model's manifest, while the old shard stays as it is; `swap` renames the complete folder into
place (`dmwan_qdrant.store.folders.swap_in`). A run that stops before the swap leaves the old
collection untouched, and the staging folder is removed (at the latest by the next writer that
opens the store: `folders.clear_leftovers`), so a new run starts over.

No other process can use the store meanwhile: the store's folder lock (`dmwan_qdrant.store.lock`)
is held by the process that rebuilds it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import qdrant_edge as qe

from dmwan_qdrant.errors import StoreError
from dmwan_qdrant.store import folders
from dmwan_qdrant.store.checks import check_points
from dmwan_qdrant.store.manifest import new_manifest, write_manifest
from dmwan_qdrant.store.records import CollectionSpec, PhotoPoint
from dmwan_qdrant.store.replacement import Replacement

if TYPE_CHECKING:
    from dmwan_qdrant.store.edge import EdgeStore


class EdgeReplacement(Replacement):
    """A new shard for collection ``name`` of the `EdgeStore` ``store`` (see the module doc).

    The new manifest keeps the old one's ingest record (the folders to restore from), with the
    point count of the new collection once swapped in.
    """

    def __init__(self, store: EdgeStore, name: str, spec: CollectionSpec) -> None:
        super().__init__(name, spec)
        self._store = store
        old = store._manifest(name)
        self.manifest = new_manifest(name, spec.dim, spec.token_dim, spec.model, spec.index)
        if isinstance(old.get("ingest"), dict):
            self.manifest["ingest"] = dict(old["ingest"])
        store._ensure_space(0, "rebuilding a collection")
        self._stack = contextlib.ExitStack()
        self._built = self._stack.enter_context(folders.staging(store.path))
        try:
            self._shard: qe.EdgeShard | None = store._new_shard(name, self._built, self.manifest)
        except BaseException:
            self._stack.close()
            raise

    def describe(self) -> str:
        return (f"'{self.name}' is rebuilt in place in the embedded store {self._store.path}, beside the old "
                "collection, and swapped in when complete; this process holds the store's lock until then, so "
                "every other dmwan command on this store (query, ingest, serve, collections) is refused as "
                "'in use' meanwhile; stopped before the end, the collection stays as it was")

    def _open(self) -> qe.EdgeShard:
        if self._shard is None:
            raise StoreError(f"the rebuild of collection '{self.name}' is over")
        return self._shard

    def payloads(self) -> dict[str, dict[str, Any]]:
        return {}  # always a fresh shard: nothing to resume

    def upsert(self, points: Sequence[PhotoPoint]) -> None:
        rows = check_points(self.name, points, self.spec.dim, self.spec.token_dim)
        for batch in self._store._batches(rows):
            self._store._write_to(self._open(), self.name, batch)

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with self._store._engine(self.name, "deleting points"):
                self._open().update(qe.UpdateOperation.delete_points(cast("list[qe.PointId]", list(ids))))

    def count(self) -> int:
        with self._store._engine(self.name, "counting points"):
            return int(self._open().count(qe.CountRequest(exact=True)))

    def swap(self, keep_as: str | None = None) -> str:
        store, name = self._store, self.name
        shard = self._open()
        points = self.count()
        if isinstance(self.manifest.get("ingest"), dict):
            self.manifest["ingest"]["points"] = points
        keep = None
        if keep_as:
            keep = store.path / keep_as
            if keep.exists():
                raise StoreError(f"cannot keep the old collection as '{keep_as}': that name is taken")
        try:
            with store._engine(name, "flushing"):
                shard.flush()
                shard.close()
            self._shard = None
            write_manifest(self._built, self.manifest)
            old = store._shards.pop(name, None)
            if old is not None:
                with contextlib.suppress(Exception):
                    old.close()
            folders.swap_in(self._built, store.path / name, keep)
        except OSError as e:
            raise StoreError(f"cannot swap in the rebuilt collection '{name}': {e.strerror}") from None
        finally:
            self._stack.close()
        store._manifests[name] = self.manifest
        if keep_as:
            store._manifests.pop(keep_as, None)
            return f"'{name}' swapped in place; the old collection is kept as '{keep_as}'"
        return f"'{name}' swapped in place; the old shard was deleted"

    def abandon(self) -> None:
        if self._shard is not None:
            with contextlib.suppress(Exception):
                self._shard.close()
            self._shard = None
        self._stack.close()
