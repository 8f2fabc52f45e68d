"""`ClientStore`: the store over qdrant-client, shared by `ServerStore` and `MemoryStore`.

The model record and the `IndexSettings` live in the collection's own ``metadata`` (Qdrant >=
1.16; qdrant-client 1.20 sends it on create and reads it back in ``get_collection``, and its local
mode keeps it too), under the key ``dmwan_qdrant``. So it is created and deleted with the collection, is never a point, and
cannot show up in searches, scrolls or counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from dmwan_qdrant.errors import CollectionNotFoundError, DmwanError, StoreError
from dmwan_qdrant.store.base import (
    GLOBAL,
    INDEXED_FIELDS,
    TOKENS,
    CollectionInfo,
    CollectionSpec,
    Hit,
    PhotoPoint,
    Store,
    StoredPoint,
    stored_points,
    canonical_ids,
    check_name,
    check_points,
    check_queries,
    check_search,
    index_state,
)
from dmwan_qdrant.store.index import INT8_QUANTILE, IndexSettings
from dmwan_qdrant.store.filters import (
    Condition,
    Match,
    MatchAny,
    Prefix,
    Range,
    check_filter,
)
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
        self._client = client
        self._where = where
        self._policy = policy or RetryPolicy(retries=0)
        self._timeout = timeout
        self._payload_indexes = payload_indexes
        self.batch_size = max(1, int(batch_size))
        self._meta: dict[str, dict[str, Any]] = {}
        self._closed = False

    # -- internals -----------------------------------------------------------------------------

    def _call(self, name: str | None, what: str, fn: Callable[[], T]) -> T:
        """Run one client call with retries, translating every engine error."""
        if self._closed:
            raise StoreError(f"store {self._where} is closed")
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

    def _not_found(self, name: str) -> CollectionNotFoundError:
        self._meta.pop(name, None)
        try:
            names = ", ".join(self.list_collections()) or "none"
        except StoreError:
            names = "unknown"
        return CollectionNotFoundError(f"no collection named '{name}' (collections: {names})")

    def _info(self, name: str) -> qm.CollectionInfo:
        check_name(name)
        return self._call(name, "reading the collection", lambda: self._client.get_collection(name))

    def _record(self, name: str) -> dict[str, Any]:
        """The collection's ``dmwan_qdrant`` metadata: dims and model, cached per store."""
        if name not in self._meta:
            info = self._info(name)
            meta = (info.config.metadata or {}).get(META_KEY)
            if not isinstance(meta, dict) or "model" not in meta:
                raise StoreError(
                    f"collection '{name}' has no model record: it was not created by dmwan-qdrant, "
                    "or the server is older than Qdrant 1.16 (no collection metadata)"
                )
            self._meta[name] = meta
        return self._meta[name]

    # -- collections ---------------------------------------------------------------------------

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        check_name(name)
        if spec.dim < 1 or spec.token_dim < 1:
            raise StoreError(f"invalid dims {spec.dim}/{spec.token_dim} for collection '{name}'")
        meta = {
            "format": META_FORMAT,
            "dim": int(spec.dim),
            "token_dim": int(spec.token_dim),
            "model": spec.model,
            "index": spec.index.to_dict(),
        }
        if self.collection_exists(name):
            raise StoreError(f"collection '{name}' already exists")
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
        self._meta.pop(name, None)
        try:
            self._record(name)
        except StoreError:
            self._call(
                name, "removing the collection", lambda: self._client.delete_collection(name)
            )
            raise StoreError(
                f"Qdrant at {self._where} did not keep the collection metadata; "
                "dmwan-qdrant needs Qdrant >= 1.16"
            ) from None

    def collection_exists(self, name: str) -> bool:
        check_name(name)
        return bool(
            self._call(None, "checking a collection", lambda: self._client.collection_exists(name))
        )

    def list_collections(self) -> list[str]:
        res = self._call(None, "listing collections", self._client.get_collections)
        return sorted(c.name for c in res.collections)

    def delete_collection(self, name: str) -> None:
        check_name(name)
        self._meta.pop(name, None)
        if not self.collection_exists(name):  # the local mode's delete ignores missing names
            raise self._not_found(name)
        self._call(name, "deleting the collection", lambda: self._client.delete_collection(name))

    def collection_info(self, name: str) -> CollectionInfo:
        meta = self._record(name)
        info = self._info(name)
        points = int(info.points_count or 0)
        indexed = int(info.indexed_vectors_count or 0)
        return CollectionInfo(
            name=name,
            backend=self.backend,
            points=points,
            dim=int(meta["dim"]),
            token_dim=int(meta["token_dim"]),
            model=dict(meta["model"]),
            indexed_vectors=indexed,
            index_state=self._index_state(points, indexed),
            segments=None if self.backend == "memory" else int(info.segments_count or 0),
            status=getattr(info.status, "value", str(info.status)),
            index=IndexSettings.from_dict(meta.get("index")),
        )

    def _index_state(self, points: int, indexed: int) -> str:
        return index_state(points, indexed)

    def get_model_record(self, name: str) -> dict[str, Any]:
        check_name(name)
        return dict(self._record(name)["model"])

    # -- points --------------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[PhotoPoint]) -> None:
        meta = self._record(name)
        rows = check_points(name, points, meta["dim"], meta["token_dim"])
        for start in range(0, len(rows), self.batch_size):
            batch = [
                qm.PointStruct(
                    id=pid, vector={GLOBAL: vec.tolist(), TOKENS: tok.tolist()}, payload=payload
                )
                for pid, vec, tok, payload in rows[start : start + self.batch_size]
            ]
            # wait=True: acknowledged means applied, so a search right after sees the points.
            self._call(
                name, "upserting points", partial(self._client.upsert, name, batch, wait=True)
            )

    def retrieve(self, name: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        check_name(name)
        wanted = canonical_ids(ids)
        records = self._call(
            name,
            "retrieving points",
            lambda: self._client.retrieve(
                name, cast(list[qm.ExtendedPointId], wanted), with_payload=True, with_vectors=False
            ),
        )
        found = {str(r.id): dict(r.payload or {}) for r in records}
        return [found[i] for i in wanted if i in found]

    def read_points(self, name: str, ids: Sequence[str]) -> list[StoredPoint]:
        check_name(name)
        wanted = canonical_ids(ids)
        if not wanted:
            self._record(name)
            return []
        records = self._call(
            name,
            "reading vectors",
            lambda: self._client.retrieve(
                name, cast(list[qm.ExtendedPointId], wanted), with_payload=True, with_vectors=True
            ),
        )
        return stored_points(records, wanted)

    def scroll_payloads(
        self, name: str, fields: list[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        check_name(name)
        with_payload: bool | list[str] = True if fields is None else (list(fields) or False)
        offset = None
        while True:
            records, offset = self._call(
                name,
                "scrolling points",
                partial(
                    self._client.scroll,
                    name,
                    limit=_PAGE,
                    offset=offset,
                    with_payload=with_payload,
                    with_vectors=False,
                ),
            )
            for r in records:
                yield str(r.id), dict(r.payload or {})
            if offset is None:
                return

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        check_name(name)
        wanted = canonical_ids(ids)
        selector = qm.PointIdsList(points=cast(list[qm.ExtendedPointId], wanted))
        self._call(name, "deleting points", lambda: self._client.delete(name, selector, wait=True))

    def count(self, name: str) -> int:
        check_name(name)
        return int(
            self._call(name, "counting points", lambda: self._client.count(name, exact=True)).count
        )

    def count_with_key(self, name: str, key: str) -> int:
        check_name(name)
        flt = qm.Filter(must_not=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key))])
        return int(
            self._call(
                name,
                "counting points",
                lambda: self._client.count(name, count_filter=flt, exact=True),
            ).count
        )

    # -- search --------------------------------------------------------------------------------

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
        meta = self._record(name)
        index = IndexSettings.from_dict(meta.get("index"))
        k, prefetch, ef = check_search(k, prefetch, hnsw_ef, index.hnsw_ef)
        q, toks = check_queries(name, vectors, rerank_tokens, meta["dim"], meta["token_dim"])
        conds = check_filter(filter)
        flt = qm.Filter(must=[_condition(c) for c in conds]) if conds else None
        params = rescore = None
        if not self.brute_force:  # as the embedded store: see EdgeStore._request
            params = qm.SearchParams(hnsw_ef=ef)
            quant = qm.QuantizationSearchParams(rescore=index.rescore, oversampling=prefetch / k)
            rescore = qm.SearchParams(quantization=quant)
        reqs = []
        for i, vec in enumerate(q):
            if toks is None:
                reqs.append(
                    qm.QueryRequest(
                        query=vec.tolist(),
                        using=GLOBAL,
                        filter=flt,
                        params=params,
                        limit=k,
                        with_payload=True,
                    )
                )
            else:
                pre = qm.Prefetch(
                    query=vec.tolist(), using=GLOBAL, filter=flt, params=params, limit=prefetch
                )
                reqs.append(
                    qm.QueryRequest(
                        prefetch=pre,
                        query=toks[i].tolist(),
                        using=TOKENS,
                        filter=flt,
                        params=rescore,
                        limit=k,
                        with_payload=True,
                    )
                )
        if len(reqs) == 1:
            r = reqs[0]
            res = [
                self._call(
                    name,
                    "searching",
                    lambda: self._client.query_points(
                        name,
                        query=r.query,
                        using=r.using,
                        prefetch=r.prefetch,
                        query_filter=r.filter,
                        search_params=r.params,
                        limit=k,
                        with_payload=True,
                    ),
                )
            ]
        else:
            res = self._call(name, "searching", lambda: self._client.query_batch_points(name, reqs))
        return [
            [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in r.points] for r in res
        ]

    # -- maintenance ---------------------------------------------------------------------------

    def optimize(self, name: str) -> None:
        self._record(name)  # raises for a missing collection, like every backend

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._client.close()
            except Exception:  # closing a dead connection must not mask the caller's error
                pass


def _condition(c: Condition) -> qm.FieldCondition:
    """A checked filter condition (`dmwan_qdrant.store.filters`) as qdrant-client's."""
    if isinstance(c, Match):
        return qm.FieldCondition(key=c.key, match=qm.MatchValue(value=c.value))
    if isinstance(c, MatchAny):
        return qm.FieldCondition(key=c.key, match=qm.MatchAny(any=list(c.values)))
    if isinstance(c, Range):
        return qm.FieldCondition(key=c.key, range=qm.Range(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt))
    if isinstance(c, Prefix):
        return qm.FieldCondition(key=c.key, match=qm.MatchPrefix(prefix=c.prefix))
    raise TypeError(f"not a filter condition: {c!r}")
