"""`EdgeStore`: the embedded default, one qdrant-edge shard per collection in a local folder.

Layout::

    <path>/.lock                       exclusive flock while a process has the store open
    <path>/<collection>/collection.json  manifest: dims and the model record
    <path>/<collection>/shard/          the qdrant-edge shard (segments, WAL, edge_config.json)

A collection exists once its manifest exists: the manifest is written last (atomically), so a
crash in the middle of `create_collection` leaves a folder without one, which is ignored and
cleared by the next create of that name. Deletion renames the folder away first for the same
reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import qdrant_edge as qe

from dmwan_qdrant.errors import CollectionNotFoundError, StoreError
from dmwan_qdrant.store.base import (
    GLOBAL,
    INDEXED_FIELDS,
    TOKENS,
    CollectionInfo,
    CollectionSpec,
    Hit,
    PhotoPoint,
    Store,
    canonical_ids,
    check_k,
    check_name,
    check_points,
    check_queries,
    index_state,
)
from dmwan_qdrant.store.edge_config import edge_config, write_atomic
from dmwan_qdrant.store.filters import check_filter
from dmwan_qdrant.store.lock import FolderLock, in_use_error

MANIFEST = "collection.json"
SHARD_DIR = "shard"
MANIFEST_FORMAT = 1
_DELETING = ".deleting-"
_PAGE = 1024


class EdgeStore(Store):
    """Embedded store in the folder ``path`` (created if missing), locked to this process.

    Args:
        path: store folder.
        batch_size: points per engine update in `upsert`.

    Raises:
        StoreInUseError: another process (or another `EdgeStore` here) has the folder open.
    """

    backend = "edge"

    def __init__(self, path: str | Path, batch_size: int = 512) -> None:
        self.path = Path(path).expanduser().resolve()
        self.batch_size = max(1, int(batch_size))
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create store folder {self.path}: {e.strerror}") from None
        self._lock = FolderLock(self.path)
        self._lock.acquire()
        self._shards: dict[str, qe.EdgeShard] = {}
        self._manifests: dict[str, dict[str, Any]] = {}
        self._closed = False
        for leftover in self.path.glob(_DELETING + "*"):  # an interrupted delete_collection
            shutil.rmtree(leftover, ignore_errors=True)

    # -- internals -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _engine(self, name: str, what: str) -> Iterator[None]:
        """Translate qdrant-edge's bare exceptions into the project's errors."""
        try:
            yield
        except StoreError:
            raise
        except Exception as e:  # qdrant-edge raises plain Exception for everything
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "WouldBlock" in msg:
                # The shard's WAL is locked by a process that bypassed the folder lock (we hold
                # that one), e.g. a tool using qdrant-edge directly: its pid is unknown.
                raise in_use_error(self.path, None) from None
            raise StoreError(
                f"embedded store failed {what} in collection '{name}': {msg}"
            ) from None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    def _manifest(self, name: str) -> dict[str, Any]:
        self._check_open()
        check_name(name)
        if name not in self._manifests:
            file = self.path / name / MANIFEST
            try:
                self._manifests[name] = json.loads(file.read_text())
            except FileNotFoundError:
                raise CollectionNotFoundError(self._not_found_message(name)) from None
            except (OSError, ValueError) as e:
                raise StoreError(
                    f"collection '{name}' has an unreadable manifest {file}: {e}"
                ) from None
        return self._manifests[name]

    def _not_found_message(self, name: str) -> str:
        names = ", ".join(self.list_collections()) or "none"
        return f"no collection named '{name}' (collections: {names})"

    def _shard(self, name: str) -> qe.EdgeShard:
        self._manifest(name)
        shard = self._shards.get(name)
        if shard is None:
            with self._engine(name, "opening the shard"):
                shard = qe.EdgeShard.load(str(self.path / name / SHARD_DIR))
            self._shards[name] = shard
        return shard

    # -- collections ---------------------------------------------------------------------------

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        self._check_open()
        check_name(name)
        if self.collection_exists(name):
            raise StoreError(f"collection '{name}' already exists")
        if spec.dim < 1 or spec.token_dim < 1:
            raise StoreError(f"invalid dims {spec.dim}/{spec.token_dim} for collection '{name}'")
        manifest = {
            "format": MANIFEST_FORMAT,
            "name": name,
            "dim": int(spec.dim),
            "token_dim": int(spec.token_dim),
            "model": spec.model,
        }
        try:
            text = json.dumps(manifest, indent=2, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise StoreError(f"model record of collection '{name}' is not JSON: {e}") from None
        folder = self.path / name
        shutil.rmtree(folder, ignore_errors=True)  # a half-created leftover without manifest
        with self._engine(name, "creating the shard"):
            shard = qe.EdgeShard.create(
                str(folder / SHARD_DIR), edge_config(spec.dim, spec.token_dim)
            )
            for field in INDEXED_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                )
            shard.flush()
        self._shards[name] = shard
        write_atomic(folder / MANIFEST, text)
        self._manifests[name] = manifest

    def collection_exists(self, name: str) -> bool:
        self._check_open()
        check_name(name)
        return (self.path / name / MANIFEST).is_file()

    def list_collections(self) -> list[str]:
        self._check_open()
        return sorted(
            p.name
            for p in self.path.iterdir()
            if not p.name.startswith(".") and (p / MANIFEST).is_file()
        )

    def delete_collection(self, name: str) -> None:
        self._manifest(name)
        shard = self._shards.pop(name, None)
        self._manifests.pop(name, None)
        if shard is not None:
            with self._engine(name, "closing the shard"):
                shard.close()
        # Rename first: the collection disappears at once, and an interrupted rmtree leaves a
        # folder the next open clears, never a half-deleted collection.
        trash = self.path / f"{_DELETING}{uuid.uuid4().hex}"
        os.replace(self.path / name, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def collection_info(self, name: str) -> CollectionInfo:
        manifest = self._manifest(name)
        with self._engine(name, "reading shard info"):
            info = self._shard(name).info()
        return CollectionInfo(
            name=name,
            backend=self.backend,
            points=int(info.points_count),
            dim=int(manifest["dim"]),
            token_dim=int(manifest["token_dim"]),
            model=dict(manifest["model"]),
            indexed_vectors=int(info.indexed_vectors_count),
            index_state=index_state(int(info.points_count), int(info.indexed_vectors_count)),
            segments=int(info.segments_count),
            status="green",
        )

    def get_model_record(self, name: str) -> dict[str, Any]:
        return dict(self._manifest(name)["model"])

    # -- points --------------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[PhotoPoint]) -> None:
        m = self._manifest(name)
        rows = check_points(name, points, m["dim"], m["token_dim"])
        shard = self._shard(name)
        for start in range(0, len(rows), self.batch_size):
            # Python lists, not numpy arrays: qdrant-edge 0.9 accepts arrays but reads them
            # element by element, 2.8x slower to build than tolist() (measured, 512 + 16x128).
            batch = [
                qe.Point(pid, {GLOBAL: vec.tolist(), TOKENS: tok.tolist()}, payload)
                for pid, vec, tok, payload in rows[start : start + self.batch_size]
            ]
            with self._engine(name, "upserting points"):
                shard.update(qe.UpdateOperation.upsert_points(batch))

    def retrieve(self, name: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        wanted = canonical_ids(ids)
        if not wanted:
            self._manifest(name)
            return []
        with self._engine(name, "retrieving points"):
            records = self._shard(name).retrieve(
                cast("list[qe.PointId]", wanted), with_payload=True, with_vector=False
            )
        found = {str(r.id): dict(r.payload or {}) for r in records}
        return [found[i] for i in wanted if i in found]

    def scroll_payloads(
        self, name: str, fields: list[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        shard = self._shard(name)
        with_payload: bool | list[str] = True if fields is None else (list(fields) or False)
        offset = None
        while True:
            with self._engine(name, "scrolling points"):
                records, offset = shard.scroll(
                    qe.ScrollRequest(
                        offset=offset, limit=_PAGE, with_payload=with_payload, with_vector=False
                    )
                )
            for r in records:
                yield str(r.id), dict(r.payload or {})
            if offset is None:
                return

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        wanted = canonical_ids(ids)
        shard = self._shard(name)
        if wanted:
            with self._engine(name, "deleting points"):
                shard.update(qe.UpdateOperation.delete_points(cast("list[qe.PointId]", wanted)))

    def count(self, name: str) -> int:
        with self._engine(name, "counting points"):
            return int(self._shard(name).count(qe.CountRequest(exact=True)))

    # -- search --------------------------------------------------------------------------------

    def _request(
        self, vec: np.ndarray, tok: np.ndarray | None, k: int, prefetch: int, flt: qe.Filter | None
    ) -> qe.QueryRequest:
        nearest = qe.Query.Nearest(vec.tolist(), using=GLOBAL)
        if tok is None:
            return qe.QueryRequest(limit=k, query=nearest, filter=flt, with_payload=True)
        return qe.QueryRequest(
            limit=k,
            prefetches=[qe.Prefetch(limit=prefetch, query=nearest, filter=flt)],
            query=qe.Query.Nearest(tok.tolist(), using=TOKENS),
            filter=flt,
            with_payload=True,
        )

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray | Sequence[np.ndarray],
        k: int,
        filter: dict[str, str] | None = None,
        rerank_tokens: Sequence[np.ndarray] | None = None,
        prefetch: int = 100,
    ) -> list[list[Hit]]:
        m = self._manifest(name)
        k, prefetch = check_k(k, prefetch)
        q, toks = check_queries(name, vectors, rerank_tokens, m["dim"], m["token_dim"])
        conds = check_filter(filter)
        flt = (
            qe.Filter(must=[qe.FieldCondition(key, match=qe.MatchValue(v)) for key, v in conds])
            if conds
            else None
        )
        reqs = [
            self._request(q[i], None if toks is None else toks[i], k, prefetch, flt)
            for i in range(len(q))
        ]
        shard = self._shard(name)
        with self._engine(name, "searching"):
            if len(reqs) == 1:
                results = [shard.query(reqs[0])]
            else:
                results = shard.query_batch(qe.QueryBatchRequest(reqs))
        return [
            [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in res] for res in results
        ]

    # -- maintenance ---------------------------------------------------------------------------

    def optimize(self, name: str) -> None:
        """Build HNSW on ``global`` and merge segments; blocks until done (minutes at 100k)."""
        shard = self._shard(name)
        with self._engine(name, "optimizing"):
            shard.optimize()

    def flush(self) -> None:
        """Write every open shard's segments to disk.

        Updates are already in the write-ahead log when `upsert` returns (a killed process loses
        nothing); flushing also makes reopening skip the WAL replay.
        """
        self._check_open()
        for name, shard in self._shards.items():
            with self._engine(name, "flushing"):
                shard.flush()

    def close(self) -> None:
        if self._closed:
            return
        try:
            for name, shard in list(self._shards.items()):
                with self._engine(name, "closing"):
                    shard.flush()
                    shard.close()
        finally:
            self._shards.clear()
            self._closed = True
            self._lock.release()

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.path)!r})"
