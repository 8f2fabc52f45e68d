"""`ClientStore`: the store over qdrant-client, shared by `ServerStore` and `MemoryStore`.

The model record and the `IndexSettings` live in the collection's own ``metadata`` (Qdrant >=
1.16; qdrant-client 1.20 sends it on create and reads it back in ``get_collection``, and its local
mode keeps it too), under the key ``dmwan_qdrant``. So it is created and deleted with the
collection, is never a point, and cannot show up in searches, scrolls or counts.

A collection is created as a physical collection named behind an alias of the collection's name
(`dmwan_qdrant.store.aliases`), so that `begin_replacement` can swap in a new one without a pause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from dmwan_qdrant.errors import DmwanError, StoreError
from dmwan_qdrant.store.aliases import AliasReplacement, Layout, alias_actions, owner, physical_name
from dmwan_qdrant.store.base import Store
from dmwan_qdrant.store.checks import Row
from dmwan_qdrant.store.filters import engine_filter
from dmwan_qdrant.store.index import INT8_QUANTILE
from dmwan_qdrant.store.records import GLOBAL, INDEXED_FIELDS, TOKENS, CollectionSpec, EngineInfo, SearchPlan
from dmwan_qdrant.store.replacement import Replacement
from dmwan_qdrant.store.retry import RetryPolicy, call_with_retries, server_message

T = TypeVar("T")
META_KEY = "dmwan_qdrant"
META_FORMAT = 1
_PAGE = 1024


def vectors_config(dim: int, token_dim: int, tokens: str = "int8") -> dict[str, qm.VectorParams]:
    """Named vectors of a collection; ``tokens`` has no HNSW graph (m=0): it only re-ranks, and
    is stored as `dmwan_qdrant.store.index` describes (the same layout as the embedded store's).
    """
    storage: dict[str, Any] = {}
    if tokens != "float32":
        storage["datatype"] = qm.Datatype.FLOAT16
    if tokens == "int8":
        storage["on_disk"] = True
        storage["quantization_config"] = qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(
                type=qm.ScalarType.INT8, quantile=INT8_QUANTILE, always_ram=True
            )
        )
    return {
        GLOBAL: qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
        TOKENS: qm.VectorParams(
            size=token_dim,
            distance=qm.Distance.COSINE,
            multivector_config=qm.MultiVectorConfig(comparator=qm.MultiVectorComparator.MAX_SIM),
            hnsw_config=qm.HnswConfigDiff(m=0),
            **storage,
        ),
    }


class ClientStore(Store):
    """A `Store` over a `QdrantClient`; see `ServerStore` and `MemoryStore` for the public ones.

    Args:
        client: the qdrant-client to use (owned: `close` closes it).
        where: how messages name the location, e.g. the server URL.
        policy: retries of transient failures (none for in-process clients).
        timeout: request timeout in seconds, for messages.
        payload_indexes: create keyword indexes on `INDEXED_FIELDS` (servers have them; the
            local mode ignores them with a warning).
        batch_size: points per upsert request.
    """

    brute_force = False
    """Whether the client scores every point (its local mode): it ignores search params and
    warns about each, so none are sent."""

    def __init__(
        self,
        client: QdrantClient,
        where: str,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
        payload_indexes: bool = True,
        batch_size: int = 256,
    ) -> None:
        super().__init__(where, batch_size)
        self._client = client
        self._policy = policy or RetryPolicy(retries=0)
        self._timeout = timeout
        self._payload_indexes = payload_indexes

    # -- internals -----------------------------------------------------------------------------

    def _call(self, name: str | None, what: str, fn: Callable[[], T]) -> T:
        """Run one client call with retries, translating every engine error."""
        self._check_open()
        try:
            return call_with_retries(fn, self._policy, self._where, self._timeout)
        except DmwanError:
            raise
        except UnexpectedResponse as e:
            msg = server_message(e)
            if e.status_code == 404 and name is not None:
                raise self._not_found(name) from None
            if e.status_code == 409 and name is not None:
                raise StoreError(f"collection '{name}' already exists") from None
            raise StoreError(f"Qdrant at {self._where} rejected {what}: {msg}") from None
        except ValueError as e:  # the local mode reports everything as ValueError
            text = " ".join(str(e).split())
            if name is not None and "not found" in text:
                raise self._not_found(name) from None
            if name is not None and "already exists" in text:
                raise StoreError(f"collection '{name}' already exists") from None
            raise StoreError(f"Qdrant ({self._where}) rejected {what}: {text}") from None
        except (ApiException, QdrantException) as e:
            raise StoreError(f"Qdrant at {self._where} failed {what}: {e}") from None

    def _info(self, name: str) -> qm.CollectionInfo:
        return self._call(name, "reading the collection", lambda: self._client.get_collection(name))

    # -- engine hooks --------------------------------------------------------------------------

    def _read_manifest(self, name: str) -> dict[str, Any]:
        """The collection's ``dmwan_qdrant`` metadata: dims, model and index settings."""
        meta = (self._info(name).config.metadata or {}).get(META_KEY)
        if not isinstance(meta, dict) or "model" not in meta:
            raise StoreError(
                f"collection '{name}' has no model record: it was not created by dmwan-qdrant, "
                "or the server is older than Qdrant 1.16 (no collection metadata)"
            )
        return meta

    def _exists(self, name: str) -> bool:
        return bool(self._call(None, "checking a collection", lambda: self._client.collection_exists(name)))

    def _create(self, name: str, spec: CollectionSpec) -> None:
        physical = physical_name(name)
        self.create_physical(name, physical, spec)
        try:
            self.update_aliases(name, alias_actions(name, physical, replacing=False))
        except BaseException:
            self.drop_physical(name, physical)
            raise

    def _drop(self, name: str) -> None:
        layout = self.layout()
        target = layout.target(name)
        if name in layout.aliases:
            # The alias first: the collection is gone for every reader at once.
            self.update_aliases(name, [qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=name))])
        if target is not None:
            self.drop_physical(name, target)
        for leftover in layout.unaliased(name):  # of an interrupted create or reindex
            if leftover != target:
                self.drop_physical(name, leftover)

    def _engine_info(self, name: str) -> EngineInfo:
        info = self._info(name)
        return EngineInfo(
            points=int(info.points_count or 0),
            indexed_vectors=int(info.indexed_vectors_count or 0),
            segments=None if self.backend == "memory" else int(info.segments_count or 0),
            status=getattr(info.status, "value", str(info.status)),
        )

    def _write(self, name: str, rows: list[Row]) -> None:
        batch = [
            qm.PointStruct(id=pid, vector={GLOBAL: vec.tolist(), TOKENS: tok.tolist()}, payload=payload)
            for pid, vec, tok, payload in rows
        ]
        # wait=True: acknowledged means applied, so a search right after sees the points.
        self._call(name, "upserting points", partial(self._client.upsert, name, batch, wait=True))

    def _fetch(self, name: str, ids: list[str], vectors: bool) -> list[Any]:
        return self._call(
            name,
            "reading vectors" if vectors else "retrieving points",
            lambda: self._client.retrieve(
                name, cast(list[qm.ExtendedPointId], ids), with_payload=True, with_vectors=vectors
            ),
        )

    def _scroll(self, name: str, offset: Any, with_payload: bool | list[str]) -> tuple[list[Any], Any]:
        return self._call(
            name,
            "scrolling points",
            partial(
                self._client.scroll, name, limit=_PAGE, offset=offset, with_payload=with_payload, with_vectors=False
            ),
        )

    def _delete(self, name: str, ids: list[str]) -> None:
        selector = qm.PointIdsList(points=cast(list[qm.ExtendedPointId], ids))
        self._call(name, "deleting points", lambda: self._client.delete(name, selector, wait=True))

    def _count(self, name: str, key: str | None) -> int:
        flt = None if key is None else qm.Filter(must_not=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key))])
        return int(
            self._call(name, "counting points", lambda: self._client.count(name, count_filter=flt, exact=True)).count
        )

    def _query(self, name: str, queries: list[tuple[np.ndarray, np.ndarray | None]], plan: SearchPlan) -> list[list[Any]]:
        flt = engine_filter(plan.conditions, qm, qm.Range)
        params = rescore = None
        if not self.brute_force:  # the same parameters as the embedded store's (edge._query)
            params = qm.SearchParams(hnsw_ef=plan.ef)
            quant = qm.QuantizationSearchParams(rescore=plan.rescore, oversampling=plan.oversampling)
            rescore = qm.SearchParams(quantization=quant)
        reqs = []
        for vec, tok in queries:
            if tok is None:
                reqs.append(qm.QueryRequest(
                    query=vec.tolist(), using=GLOBAL, filter=flt, params=params, limit=plan.k, with_payload=True
                ))
                continue
            pre = qm.Prefetch(query=vec.tolist(), using=GLOBAL, filter=flt, params=params, limit=plan.prefetch)
            reqs.append(qm.QueryRequest(
                prefetch=pre, query=tok.tolist(), using=TOKENS, filter=flt, params=rescore, limit=plan.k,
                with_payload=True,
            ))
        if len(reqs) == 1:
            r = reqs[0]
            res = [self._call(name, "searching", lambda: self._client.query_points(
                name, query=r.query, using=r.using, prefetch=r.prefetch, query_filter=r.filter,
                search_params=r.params, limit=plan.k, with_payload=True,
            ))]
        else:
            res = self._call(name, "searching", lambda: self._client.query_batch_points(name, reqs))
        return [r.points for r in res]

    def _release(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing a dead connection must not mask the caller's error
            pass

    # -- collections and maintenance -----------------------------------------------------------

    def list_collections(self) -> list[str]:
        return self.layout().names()

    def begin_replacement(self, name: str, spec: CollectionSpec) -> Replacement:
        """A new physical collection for ``name``, swapped in by moving its alias
        (`dmwan_qdrant.store.aliases.AliasReplacement`)."""
        self._check_writable()
        self._manifest(name)  # raises for a missing collection
        return AliasReplacement(self, name, spec)

    def finish_interrupted_swap(self, name: str) -> bool:
        """Make the alias ``name`` where a reindex that converted it to the alias layout stopped
        between deleting the old collection and making the alias: the new collection, complete,
        is then there without a name. Returns whether it did."""
        self._check_open()
        layout = self.layout()
        if layout.target(name) is not None:
            return False
        for leftover in layout.unaliased(name):
            record = self.physical_record(leftover) or {}
            if record.get("replaces") == name:  # converted: the old collection was `name` itself
                self.update_aliases(name, alias_actions(name, leftover, replacing=False))
                self.forget(name)
                return True
        return False

    # -- the alias layout (`dmwan_qdrant.store.aliases`) ---------------------------------------

    def layout(self) -> Layout:
        """The server's collections and aliases."""
        cols = self._call(None, "listing collections", self._client.get_collections)
        aliases = self._call(None, "listing aliases", self._client.get_aliases)
        return Layout(frozenset(c.name for c in cols.collections),
                      {a.alias_name: a.collection_name for a in aliases.aliases})

    def update_aliases(self, name: str, actions: list[Any]) -> None:
        """Apply alias ``actions`` in one atomic call (messages name the collection ``name``)."""
        self._call(name, "moving the alias",
                   lambda: self._client.update_collection_aliases(change_aliases_operations=actions))
        self.forget(name)

    def forget(self, name: str) -> None:
        """Drop what is cached of collection ``name`` (after its alias moved)."""
        self._manifests.pop(name, None)

    def physical_record(self, physical: str) -> dict[str, Any] | None:
        """The ``dmwan_qdrant`` record of a physical collection; None without one."""
        info = self._call(owner(physical), "reading the collection", lambda: self._client.get_collection(physical))
        meta = (info.config.metadata or {}).get(META_KEY)
        return meta if isinstance(meta, dict) else None

    def scroll_physical(self, name: str, physical: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(id, payload)`` of every point of a physical collection of ``name``."""
        return self._pages(physical, True)

    def drop_physical(self, name: str, physical: str) -> None:
        """Delete the physical collection ``physical`` of collection ``name``."""
        self._call(name, "deleting the collection", lambda: self._client.delete_collection(physical))

    def create_physical(self, name: str, physical: str, spec: CollectionSpec,
                        extra: dict[str, Any] | None = None) -> None:
        """Create the physical collection ``physical`` for collection ``name`` with the record of
        ``spec`` (and ``extra`` keys), its payload indexes, and check the server kept the record."""
        meta = {
            "format": META_FORMAT,
            "dim": int(spec.dim),
            "token_dim": int(spec.token_dim),
            "model": spec.model,
            "index": spec.index.to_dict(),
            **(extra or {}),
        }
        self._call(
            name,
            "creating the collection",
            lambda: self._client.create_collection(
                physical,
                vectors_config=vectors_config(spec.dim, spec.token_dim, spec.index.tokens),
                hnsw_config=qm.HnswConfigDiff(m=spec.index.hnsw_m, ef_construct=spec.index.ef_construct),
                metadata={META_KEY: meta},
            ),
        )
        if self._payload_indexes:
            for field in INDEXED_FIELDS:
                self._call(
                    name,
                    f"indexing payload field {field!r}",
                    partial(
                        self._client.create_payload_index,
                        physical,
                        field,
                        field_schema=qm.PayloadSchemaType.KEYWORD,
                        wait=True,
                    ),
                )
        # A server older than 1.16 drops the metadata silently; a collection without its model
        # record would let any model write into it, so refuse now rather than later.
        record = self.physical_record(physical)
        if not record or "model" not in record:
            self.drop_physical(name, physical)
            raise StoreError(
                f"Qdrant at {self._where} did not keep the collection metadata; "
                "dmwan-qdrant needs Qdrant >= 1.16"
            )

    def optimize(self, name: str) -> None:
        self._manifest(name)  # raises for a missing collection, like every backend
