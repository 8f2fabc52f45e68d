"""`ClientStore`: the store over qdrant-client, shared by `ServerStore` and `MemoryStore`.

The model record and the `IndexSettings` live in the collection's own ``metadata`` (Qdrant >=
1.16; qdrant-client 1.20 sends it on create and reads it back in ``get_collection``, and its local
mode keeps it too), under the key ``dmwan_qdrant``. So it is created and deleted with the
collection, is never a point, and cannot show up in searches, scrolls or counts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from dmwan_qdrant.errors import DmwanError, StoreError
from dmwan_qdrant.store.base import SearchPlan, Store
from dmwan_qdrant.store.checks import Row
from dmwan_qdrant.store.filters import engine_filter
from dmwan_qdrant.store.index import INT8_QUANTILE
from dmwan_qdrant.store.records import GLOBAL, INDEXED_FIELDS, TOKENS, CollectionSpec, EngineInfo
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
        meta = {
            "format": META_FORMAT,
            "dim": int(spec.dim),
            "token_dim": int(spec.token_dim),
            "model": spec.model,
            "index": spec.index.to_dict(),
        }
        self._call(
            name,
            "creating the collection",
            lambda: self._client.create_collection(
                name,
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
                        name,
                        field,
                        field_schema=qm.PayloadSchemaType.KEYWORD,
                        wait=True,
                    ),
                )
        # A server older than 1.16 drops the metadata silently; a collection without its model
        # record would let any model write into it, so refuse now rather than later.
        try:
            self._manifest(name)
        except StoreError:
            self._call(name, "removing the collection", lambda: self._client.delete_collection(name))
            raise StoreError(
                f"Qdrant at {self._where} did not keep the collection metadata; "
                "dmwan-qdrant needs Qdrant >= 1.16"
            ) from None

    def _drop(self, name: str) -> None:
        self._call(name, "deleting the collection", lambda: self._client.delete_collection(name))

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
        res = self._call(None, "listing collections", self._client.get_collections)
        return sorted(c.name for c in res.collections)

    def optimize(self, name: str) -> None:
        self._manifest(name)  # raises for a missing collection, like every backend
