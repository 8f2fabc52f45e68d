"""The store interface: records, the abstract `Store`, and the checks every backend shares.

Three backends implement `Store` with identical behaviour (the contract tests in
``tests/test_store_contract.py`` run the same assertions against each):

- `EdgeStore`: embedded qdrant-edge shards in a local folder (the default);
- `ServerStore`: a Qdrant server or cluster through qdrant-client;
- `MemoryStore`: qdrant-client's in-process ``:memory:`` mode, the reference in tests.

A collection holds one point per photo with two named vectors: ``global`` (the L2-normalised
global embedding, cosine) and ``tokens`` (the local tokens as a multivector, compared with MaxSim,
used only to re-rank the candidates that ``global`` found), plus a JSON payload.
"""

from __future__ import annotations

import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dmwan_qdrant.errors import ModelMismatchError, StoreError, UsageError
from dmwan_qdrant.store.index import IndexSettings, check_ef

GLOBAL = "global"
"""Name of the dense global vector."""
TOKENS = "tokens"
"""Name of the multivector of local tokens."""
INDEXED_FIELDS = ("label", "content_hash", "path")
"""Payload fields that get a keyword index where the backend has payload indexes."""

# Letters, digits, '_' and '-': safe as a folder name on every OS and as a Qdrant collection
# name, and never clashes with the store's own dot-files (.lock, .deleting-*).
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class CollectionSpec:
    """What a new collection holds.

    Attributes:
        dim: size of the global embedding.
        token_dim: size of each local token.
        model: JSON-able record of the model that fills the collection, e.g.
            ``{"fingerprint": "...", "preset": "vit_b16", "dim": 512}``.
        index: HNSW and token storage settings (default: int8 tokens; see
            `dmwan_qdrant.store.index`). Fixed for the life of the collection.
    """

    dim: int
    token_dim: int
    model: dict[str, Any] = field(default_factory=dict)
    index: IndexSettings = IndexSettings()


@dataclass
class PhotoPoint:
    """One photo to store.

    Attributes:
        id: a UUID string (derived from the file's content hash by the caller).
        vector: global embedding, shape ``(dim,)``.
        tokens: local tokens, shape ``(n_tok, token_dim)``; ``n_tok`` may vary between points.
        payload: JSON-able fields (path, content_hash, size, mtime, width, height, label...).
    """

    id: str
    vector: np.ndarray
    tokens: np.ndarray
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredPoint:
    """A point as stored, vectors included (see `Store.read_points`)."""

    id: str
    payload: dict[str, Any]
    vector: np.ndarray
    tokens: np.ndarray


def stored_points(records: Iterable[Any], wanted: Sequence[str]) -> list[StoredPoint]:
    """`StoredPoint`s from engine records (``.id``, ``.payload``, ``.vector`` as a dict of named
    vectors), in the order of ``wanted``; ids not among the records are omitted."""
    found = {}
    for r in records:
        vec = r.vector if isinstance(r.vector, dict) else {}
        found[str(r.id)] = StoredPoint(
            str(r.id),
            dict(r.payload or {}),
            np.asarray(vec.get(GLOBAL, []), dtype=np.float32),
            np.asarray(vec.get(TOKENS, []), dtype=np.float32),
        )
    return [found[i] for i in wanted if i in found]


@dataclass(frozen=True)
class Hit:
    """One search result: point id (canonical UUID string), score (higher is better), payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    """State of a collection.

    Attributes:
        name: collection name.
        backend: ``"edge"``, ``"server"`` or ``"memory"``.
        points: number of points.
        dim: size of the global vectors.
        token_dim: size of the tokens.
        model: the model record stored with the collection.
        indexed_vectors: vectors that sit in an HNSW-indexed segment, as the engine reports it
            (qdrant-edge and the server count every named vector, so up to ``2 * points``).
        index_state: ``"indexed"`` (every point in indexed segments), ``"partial"``,
            ``"exact"`` (nothing indexed yet: searches scan; fine below a few thousand points)
            or ``"none"`` (the backend has no index: memory).
        segments: number of segments where the engine tells it, else None.
        status: engine status, e.g. ``"green"``; a server reports ``"yellow"`` while optimizing.
        index: the settings the collection was created with (`IndexSettings.from_dict`: a
            collection older than recorded settings reports its real float32 layout); None where
            they are not known (a store described by `dmwan serve`).
    """

    name: str
    backend: str
    points: int
    dim: int
    token_dim: int
    model: dict[str, Any]
    indexed_vectors: int
    index_state: str
    segments: int | None
    status: str
    index: IndexSettings | None = None


def index_state(points: int, indexed_vectors: int, vectors_per_point: int = 2) -> str:
    """Summarise the engine's indexed-vector figure as one word (see `CollectionInfo`)."""
    if indexed_vectors <= 0:
        return "exact"
    if indexed_vectors >= points * vectors_per_point:
        return "indexed"
    return "partial"


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid collection name, else raise `UsageError`."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UsageError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def canonical_id(point_id: str | uuid.UUID) -> str:
    """The canonical form (lower-case, hyphenated) of a UUID point id; `StoreError` if not one."""
    if isinstance(point_id, uuid.UUID):
        return str(point_id)
    try:
        return str(uuid.UUID(str(point_id)))
    except (ValueError, TypeError, AttributeError):
        raise StoreError(f"invalid point id {point_id!r}: point ids are UUID strings") from None


def canonical_ids(ids: Iterable[str | uuid.UUID]) -> list[str]:
    """Canonical ids, duplicates removed, first-seen order kept."""
    return list(dict.fromkeys(canonical_id(i) for i in ids))


def model_record_mismatch(stored: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """Describe why ``expected`` is not the model recorded as ``stored``, or None if it is.

    Compares fingerprints when both records have one (presets and paths may differ for the same
    weights), else the whole records.
    """
    if "fingerprint" in stored and "fingerprint" in expected:
        if stored["fingerprint"] == expected["fingerprint"]:
            return None
        return f"fingerprint {stored['fingerprint']} != {expected['fingerprint']}"
    return None if stored == expected else f"{stored} != {expected}"


def as_matrix(x: np.ndarray | Sequence[Sequence[float]], what: str) -> np.ndarray:
    """``x`` as a finite float32 2-D array; `StoreError` on NaN/inf (no engine accepts them)."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise StoreError(f"{what} must be a 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise StoreError(f"{what} contains NaN or infinite values")
    return a


def _dim_error(name: str, what: str, want: int, got: tuple[int, ...]) -> ModelMismatchError:
    return ModelMismatchError(
        f"collection '{name}' holds {what} of size {want}, got shape {got}: "
        "were these made by another model?"
    )


def check_points(
    name: str, points: Sequence[PhotoPoint], dim: int, token_dim: int
) -> list[tuple[str, np.ndarray, np.ndarray, dict[str, Any]]]:
    """Validated ``(id, vector, tokens, payload)`` tuples, float32, later duplicates winning.

    Checking here rather than in the engines gives the same error on every backend.
    """
    out: dict[str, tuple[str, np.ndarray, np.ndarray, dict[str, Any]]] = {}
    for p in points:
        pid = canonical_id(p.id)
        vec = np.asarray(p.vector, dtype=np.float32)
        if vec.shape != (dim,):
            raise _dim_error(name, "global vectors", dim, vec.shape)
        tok = as_matrix(p.tokens, f"tokens of point {pid}")
        if tok.shape[1] != token_dim or tok.shape[0] == 0:
            raise _dim_error(name, "tokens", token_dim, tok.shape)
        if not np.isfinite(vec).all():
            raise StoreError(f"vector of point {pid} contains NaN or infinite values")
        try:  # each engine fails differently on, e.g., numpy scalars: refuse them the same way
            json.dumps(p.payload, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise StoreError(f"payload of point {pid} is not plain JSON: {e}") from None
        out[pid] = (pid, vec, tok, dict(p.payload))
    return list(out.values())


def check_queries(
    name: str,
    vectors: np.ndarray | Sequence[np.ndarray],
    rerank_tokens: Sequence[np.ndarray] | None,
    dim: int,
    token_dim: int,
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Validated query vectors ``(n, dim)`` and per-query token matrices (or None)."""
    try:
        q = np.asarray(vectors, dtype=np.float32)
    except ValueError:  # ragged list of vectors
        raise StoreError("query vectors must all have the same size") from None
    if q.ndim != 2 or q.shape[1] != dim:
        raise _dim_error(name, "global vectors", dim, q.shape)
    q = as_matrix(q, "query vectors")
    if rerank_tokens is None:
        return q, None
    toks = [as_matrix(t, "query tokens") for t in rerank_tokens]
    if len(toks) != len(q):
        raise StoreError(f"{len(q)} query vectors but {len(toks)} token sets")
    for t in toks:
        if t.shape[1] != token_dim or t.shape[0] == 0:
            raise _dim_error(name, "tokens", token_dim, t.shape)
    return q, toks


def check_search(k: int, prefetch: int, hnsw_ef: int | None, default_ef: int) -> tuple[int, int, int]:
    """``(k, prefetch, ef)`` validated: prefetch raised to at least k so the re-rank can fill
    k, ``hnsw_ef`` (None: ``default_ef``, the collection's) a positive int."""
    if int(k) < 1:
        raise UsageError(f"k must be at least 1, got {k}")
    ef = check_ef(hnsw_ef)
    return int(k), max(int(prefetch), int(k)), default_ef if ef is None else ef


class Store(ABC):
    """A vector store of photo points, one collection per photo set.

    Every method that takes a collection name raises `CollectionNotFoundError` when it does not
    exist. Engine errors a user can cause are raised as `dmwan_qdrant.errors` types. A store is a
    context manager; leaving the block closes it. Not safe to share between threads.
    """

    backend: str = "?"
    """Short backend name: ``"edge"``, ``"server"`` or ``"memory"``."""

    # -- collections ---------------------------------------------------------------------------

    @abstractmethod
    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        """Create an empty collection; `StoreError` if one of that name exists."""

    @abstractmethod
    def collection_exists(self, name: str) -> bool:
        """Whether a collection of that name exists."""

    @abstractmethod
    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""

    @abstractmethod
    def delete_collection(self, name: str) -> None:
        """Delete a collection and all its points."""

    @abstractmethod
    def collection_info(self, name: str) -> CollectionInfo:
        """Point count, dims, model record and index state of a collection."""

    @abstractmethod
    def get_model_record(self, name: str) -> dict[str, Any]:
        """The model record given at `create_collection`."""

    def check_model(self, name: str, model: dict[str, Any]) -> None:
        """Raise `ModelMismatchError` unless ``model`` is the model recorded with the collection.

        Call before writing or querying with an encoder, so that another model's vectors never
        mix in silently.
        """
        stored = self.get_model_record(name)
        why = model_record_mismatch(stored, model)
        if why is not None:
            raise ModelMismatchError(
                f"collection '{name}' was filled by another model ({why}); "
                "use the model it was built with, or a new collection"
            )

    # -- points --------------------------------------------------------------------------------

    @abstractmethod
    def upsert(self, name: str, points: Sequence[PhotoPoint]) -> None:
        """Insert or replace points by id, in batches. Returns once the engine acknowledged them."""

    @abstractmethod
    def retrieve(self, name: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Payloads of the points with these ids, in the order asked; missing ids are omitted."""

    @abstractmethod
    def scroll_payloads(
        self, name: str, fields: list[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point as ``(id, payload)``, in pages; ``fields`` limits the payload keys."""

    @abstractmethod
    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""

    @abstractmethod
    def count(self, name: str) -> int:
        """Exact number of points."""

    def count_with_key(self, name: str, key: str) -> int:
        """Exact number of points whose payload holds ``key`` with a value that is not null or
        an empty list (Qdrant's ``is_empty`` negated). This default scans the payloads; the
        backends ask the engine."""
        held = 0
        for _, payload in self.scroll_payloads(name, [key]):
            value: Any = payload
            for part in key.split("."):  # a dotted key is a path into nested objects
                value = value.get(part) if isinstance(value, dict) else None
            held += value not in (None, [])
        return held

    @abstractmethod
    def read_points(self, name: str, ids: Sequence[str]) -> list[StoredPoint]:
        """The points with these ids, vectors included; missing ids are omitted. An engine that
        cannot read a point's vectors raises `StoreError` (see ``dmwan collections check``)."""

    def update_payload(self, name: str, point_id: str, fields: dict[str, Any]) -> None:
        """Set ``fields`` in the payload of one point (other fields kept); unknown ids ignored.

        Written as read-and-upsert, so every backend gets the same one-point atomicity.
        """
        for p in self.read_points(name, [point_id]):
            self.upsert(name, [PhotoPoint(p.id, p.vector, p.tokens, {**p.payload, **fields})])

    def ingest_record(self, name: str) -> dict[str, Any] | None:
        """What the last finished ingest left in the collection (points, roots, options), where
        the backend keeps such a record (the embedded store), else None."""
        self.get_model_record(name)
        return None

    def set_ingest_record(self, name: str, record: dict[str, Any]) -> None:  # noqa: B027
        """Keep ``record`` (see `ingest_record`) with the collection; a no-op where unsupported."""

    def damaged_collections(self) -> dict[str, str]:
        """Collections that cannot be opened, with one line each on what is wrong and how to
        recover (the embedded store: a folder that lost its manifest). Empty elsewhere."""
        return {}

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

    @abstractmethod
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

    # -- maintenance ---------------------------------------------------------------------------

    @abstractmethod
    def optimize(self, name: str) -> None:
        """Build the HNSW index and merge segments (blocking where the engine allows)."""

    def flush(self) -> None:  # noqa: B027 - optional: only the embedded store needs it
        """Persist everything acknowledged so far (a no-op where writes are already durable)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store (files, locks, connections). Idempotent."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
