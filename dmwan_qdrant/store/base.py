"""The `Store` facade: every check and the request assembly once, over small engine hooks.

Three backends implement the hooks with identical behaviour (the contract tests in
``tests/test_store_contract.py`` run the same assertions against each):

- `EdgeStore`: embedded qdrant-edge shards in a local folder (the default);
- `ServerStore`: a Qdrant server or cluster through qdrant-client;
- `MemoryStore`: qdrant-client's in-process ``:memory:`` mode, the reference in tests.

The public methods validate their arguments (`dmwan_qdrant.store.checks`), read the collection's
manifest (dims, model record, index settings; cached per store) and hand the engine checked rows,
ids or `SearchPlan`s. An engine only talks to its database: the hooks are the methods whose
names start with one underscore and raise `NotImplementedError` here.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dmwan_qdrant.errors import CollectionNotFoundError, StoreError
from dmwan_qdrant.store.checks import (
    Row,
    canonical_ids,
    check_dims,
    check_name,
    check_points,
    check_queries,
    check_search,
)
from dmwan_qdrant.store.filters import check_filter
from dmwan_qdrant.store.index import IndexSettings
from dmwan_qdrant.store.records import (
    CollectionInfo,
    CollectionSpec,
    EngineInfo,
    Hit,
    PhotoPoint,
    SearchPlan,
    StoredPoint,
    index_state,
    stored_points,
)
from dmwan_qdrant.store.replacement import Replacement


class Store(ABC):
    """A vector store of photo points, one collection per photo set.

    Every method that takes a collection name raises `CollectionNotFoundError` when it does not
    exist. Engine errors a user can cause are raised as `dmwan_qdrant.errors` types. A store is a
    context manager; leaving the block closes it. Not safe to share between threads.
    """

    backend: str = "?"
    """Short backend name: ``"edge"``, ``"server"`` or ``"memory"``."""

    manifest_ttl: float | None = None
    """Seconds a collection's record read once is trusted; None: while the store is open. A
    server's collection can be swapped by another process, so a long reader reads it again."""

    def __init__(self, where: str, batch_size: int) -> None:
        self._where = where
        self.batch_size = max(1, int(batch_size))
        """Points per engine write in `upsert`."""
        self._manifests: dict[str, dict[str, Any]] = {}
        self._read_at: dict[str, float] = {}
        self._closed = False

    # -- engine hooks --------------------------------------------------------------------------

    @abstractmethod
    def _read_manifest(self, name: str) -> dict[str, Any]:
        """The collection's record: ``dim``, ``token_dim``, ``model`` and ``index`` (None before
        settings were recorded); `CollectionNotFoundError` when there is no such collection."""

    @abstractmethod
    def _exists(self, name: str) -> bool:
        """Whether the engine has collection ``name``."""

    @abstractmethod
    def _create(self, name: str, spec: CollectionSpec) -> None:
        """Make the checked, new collection ``name``."""

    @abstractmethod
    def _drop(self, name: str) -> None:
        """Delete the existing collection ``name``."""

    @abstractmethod
    def _engine_info(self, name: str) -> EngineInfo:
        """The engine's figures for `collection_info`."""

    @abstractmethod
    def _write(self, name: str, rows: list[Row]) -> None:
        """Upsert one batch of checked rows (at most `batch_size`), acknowledged when it returns."""

    @abstractmethod
    def _fetch(self, name: str, ids: list[str], vectors: bool) -> list[Any]:
        """Engine records (``.id``, ``.payload``, ``.vector``) of these canonical ids."""

    @abstractmethod
    def _scroll(self, name: str, offset: Any, with_payload: bool | list[str]) -> tuple[list[Any], Any]:
        """One page of engine records from ``offset`` (None: the start), and the next offset
        (None: that was the last page)."""

    @abstractmethod
    def _delete(self, name: str, ids: list[str]) -> None:
        """Delete these canonical ids (possibly none) from an existing collection."""

    @abstractmethod
    def _count(self, name: str, key: str | None) -> int:
        """Exact number of points; with ``key``, of those whose payload holds it non-empty."""

    @abstractmethod
    def _query(self, name: str, queries: list[tuple[np.ndarray, np.ndarray | None]], plan: SearchPlan) -> list[list[Any]]:
        """Scored engine points (``.id``, ``.score``, ``.payload``) for each ``(vector, tokens or
        None)``, best first."""

    @abstractmethod
    def _release(self) -> None:
        """Close the engine: files, locks, connections (`close` calls it once)."""

    def _index_state(self, points: int, indexed: int) -> str:
        return index_state(points, indexed)

    def _check_writable(self) -> None:
        """`StoreError` where the store may not be written (closed; the embedded store opened
        read-only)."""
        self._check_open()

    # -- shared internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self._where} is closed")

    def _manifest(self, name: str) -> dict[str, Any]:
        """The collection's record (see `_read_manifest`), cached."""
        self._check_open()
        check_name(name)
        ttl = self.manifest_ttl
        if name not in self._manifests or (ttl is not None and time.monotonic() - self._read_at.get(name, 0.0) > ttl):
            self._manifests[name] = self._read_manifest(name)
            self._read_at[name] = time.monotonic()
        return self._manifests[name]

    def _not_found(self, name: str) -> CollectionNotFoundError:
        self._manifests.pop(name, None)
        try:
            names = ", ".join(self.list_collections()) or "none"
        except StoreError:
            names = "unknown"
        return CollectionNotFoundError(f"no collection named '{name}' (collections: {names})")

    def _batches(self, rows: list[Row]) -> Iterator[list[Row]]:
        for start in range(0, len(rows), self.batch_size):
            yield rows[start : start + self.batch_size]

    # -- collections ---------------------------------------------------------------------------

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        """Create an empty collection; `StoreError` if one of that name exists."""
        self._check_writable()
        check_name(name)
        check_dims(name, spec.dim, spec.token_dim)
        if self.collection_exists(name):
            raise StoreError(f"collection '{name}' already exists")
        self._manifests.pop(name, None)
        self._create(name, spec)

    def collection_exists(self, name: str) -> bool:
        """Whether a collection of that name exists."""
        self._check_open()
        check_name(name)
        return self._exists(name)

    @abstractmethod
    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""

    def delete_collection(self, name: str) -> None:
        """Delete a collection and all its points."""
        self._check_writable()
        check_name(name)
        self._manifests.pop(name, None)
        if not self._exists(name):
            raise self._not_found(name)
        self._drop(name)
        self._manifests.pop(name, None)  # `_drop` may have read it once more

    def collection_info(self, name: str) -> CollectionInfo:
        """Point count, dims, model record and index state of a collection."""
        self._manifests.pop(name, None)  # read afresh: what is shown must be what is there now
        manifest = self._manifest(name)
        engine = self._engine_info(name)
        return CollectionInfo(
            name=name,
            backend=self.backend,
            points=engine.points,
            dim=int(manifest["dim"]),
            token_dim=int(manifest["token_dim"]),
            model=dict(manifest["model"]),
            indexed_vectors=engine.indexed_vectors,
            index_state=self._index_state(engine.points, engine.indexed_vectors),
            segments=engine.segments,
            status=engine.status,
            index=IndexSettings.from_dict(manifest.get("index")),
        )

    def get_model_record(self, name: str) -> dict[str, Any]:
        """The model record given at `create_collection` (compare it with
        `dmwan_qdrant.encoder.check_same_record` before writing or querying with an encoder)."""
        return dict(self._manifest(name)["model"])

    def ingest_record(self, name: str) -> dict[str, Any] | None:
        """What the last finished ingest left in the collection (points, roots, options), where
        the backend keeps such a record (the embedded store), else None."""
        self._manifest(name)
        return None

    def set_ingest_record(self, name: str, record: dict[str, Any]) -> None:  # noqa: B027
        """Keep ``record`` (see `ingest_record`) with the collection; a no-op where unsupported."""

    def begin_replacement(self, name: str, spec: CollectionSpec) -> Replacement:
        """A new, empty collection of ``spec`` for the place of the existing ``name``, swapped in
        when complete (`dmwan_qdrant.store.replacement.Replacement`; `reindex_collection` uses it).

        Raises:
            CollectionNotFoundError: no collection ``name``.
            StoreError: a backend that cannot replace collections, or a store opened read-only.
        """
        raise StoreError(f"the {self.backend} store cannot replace a collection")

    def finish_interrupted_swap(self, name: str) -> bool:
        """Finish the swap of a replacement of ``name`` that stopped in its middle, where the
        backend can leave one so; returns whether there was one to finish."""
        return False

    def damaged_collections(self) -> dict[str, str]:
        """Collections that cannot be opened, with one line each on what is wrong and how to
        recover (the embedded store: a folder that lost its manifest). Empty elsewhere."""
        return {}

    # -- points --------------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[PhotoPoint]) -> None:
        """Insert or replace points by id, in batches. Returns once the engine acknowledged them."""
        self._check_writable()
        manifest = self._manifest(name)
        rows = check_points(name, points, manifest["dim"], manifest["token_dim"])
        for batch in self._batches(rows):
            self._write(name, batch)

    def retrieve(self, name: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Payloads of the points with these ids, in the order asked; missing ids are omitted."""
        wanted = canonical_ids(ids)
        self._manifest(name)
        if not wanted:
            return []
        found = {str(r.id): dict(r.payload or {}) for r in self._fetch(name, wanted, False)}
        return [found[i] for i in wanted if i in found]

    def read_points(self, name: str, ids: Sequence[str]) -> list[StoredPoint]:
        """The points with these ids, vectors included; missing ids are omitted. An engine that
        cannot read a point's vectors raises `StoreError` (see ``dmwan collections check``)."""
        wanted = canonical_ids(ids)
        self._manifest(name)
        if not wanted:
            return []
        return stored_points(self._fetch(name, wanted, True), wanted)

    def scroll_payloads(
        self, name: str, fields: list[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point as ``(id, payload)``, in pages; ``fields`` limits the payload keys."""
        self._check_open()
        check_name(name)
        yield from self._pages(name, True if fields is None else (list(fields) or False))

    def _pages(self, name: str, with_payload: bool | list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point of the engine's collection ``name`` as ``(id, payload)``, page by page."""
        offset = None
        while True:
            records, offset = self._scroll(name, offset, with_payload)
            for r in records:
                yield str(r.id), dict(r.payload or {})
            if offset is None:
                return

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        self._check_writable()
        check_name(name)
        self._delete(name, canonical_ids(ids))

    def count(self, name: str) -> int:
        """Exact number of points."""
        self._check_open()
        check_name(name)
        return self._count(name, None)

    def count_with_key(self, name: str, key: str) -> int:
        """Exact number of points whose payload holds ``key`` with a value that is not null or
        an empty list (Qdrant's ``is_empty`` negated); a dotted key is a path into nested
        objects."""
        self._check_open()
        check_name(name)
        return self._count(name, key)

    def update_payload(self, name: str, point_id: str, fields: dict[str, Any]) -> None:
        """Set ``fields`` in the payload of one point (other fields kept); unknown ids ignored.

        Written as read-and-upsert, so every backend gets the same one-point atomicity.
        """
        for p in self.read_points(name, [point_id]):
            self.upsert(name, [PhotoPoint(p.id, p.vector, p.tokens, {**p.payload, **fields})])

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        name: str,
        vector: np.ndarray,
        k: int,
        filter: Mapping[str, Any] | None = None,
        rerank_tokens: np.ndarray | None = None,
        prefetch: int = 100,
        hnsw_ef: int | None = None,
    ) -> list[Hit]:
        """Top ``k`` points by cosine of ``global``, best first.

        Args:
            name: collection.
            vector: query global embedding, shape ``(dim,)``.
            k: number of results.
            filter: payload conditions ``{key: condition}``, all required, applied in both
                stages: exact values, any-of lists, ranges and prefixes (the structure is in
                `dmwan_qdrant.store.filters`).
            rerank_tokens: query tokens ``(n_tok, token_dim)``. When given, the engine takes the
                top ``max(prefetch, k)`` by ``global`` and re-ranks them by MaxSim on ``tokens``
                (score = sum over query tokens of the best cosine), inside the database.
            prefetch: candidates for the re-rank.
            hnsw_ef: candidates the HNSW search of ``global`` keeps (higher: better recall,
                slower); None uses the collection's ``IndexSettings.hnsw_ef``. Exact search
                (before `optimize`, small segments, the memory backend) ignores it.
        """
        toks = None if rerank_tokens is None else [rerank_tokens]
        return self.search_batch(name, [vector], k, filter, toks, prefetch, hnsw_ef)[0]

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray | Sequence[np.ndarray],
        k: int,
        filter: Mapping[str, Any] | None = None,
        rerank_tokens: Sequence[np.ndarray] | None = None,
        prefetch: int = 100,
        hnsw_ef: int | None = None,
    ) -> list[list[Hit]]:
        """`search` for several queries in one engine call; ``rerank_tokens[i]`` goes with
        ``vectors[i]``. Equal to looping `search`."""
        manifest = self._manifest(name)
        index = IndexSettings.from_dict(manifest.get("index"))
        k, prefetch, ef = check_search(k, prefetch, hnsw_ef, index.hnsw_ef)
        q, toks = check_queries(name, vectors, rerank_tokens, manifest["dim"], manifest["token_dim"])
        plan = SearchPlan(k, prefetch, ef, index.rescore, tuple(check_filter(filter)))
        queries = [(q[i], None if toks is None else toks[i]) for i in range(len(q))]
        return [
            [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in res]
            for res in self._query(name, queries, plan)
        ]

    # -- maintenance ---------------------------------------------------------------------------

    @abstractmethod
    def optimize(self, name: str) -> None:
        """Build the HNSW index and merge segments (blocking where the engine allows)."""

    def flush(self) -> None:  # noqa: B027 - optional: only the embedded store needs it
        """Persist everything acknowledged so far (a no-op where writes are already durable)."""

    def close(self) -> None:
        """Release the store (files, locks, connections). Idempotent."""
        if self._closed:
            return
        try:
            self._release()
        finally:
            self._closed = True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

