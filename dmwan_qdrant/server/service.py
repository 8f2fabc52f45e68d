"""The search service a server fronts: an open store, the encoder of each served collection, and
a batch search that embeds the sketches of many requests in one forward pass.

Nothing here knows HTTP: `dmwan serve` (FastAPI on uvicorn) and the Ray Serve deployment both
call `SearchService.search_batch` from one worker thread at a time. Each request is a
`dmwan_qdrant.search.request.SearchRequest` answered by `run_search`, the code path of `dmwan query`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmwan_qdrant.encoder import check_same_model, fingerprint_of, has_text_tower, load_collection_model
from dmwan_qdrant.errors import CollectionNotFoundError, DmwanError, StoreError, UsageError
from dmwan_qdrant.search.core import embed_sketch_images
from dmwan_qdrant.search.request import SearchRequest, run_search
from dmwan_qdrant.search.results import Result
from dmwan_qdrant.store import Store
from dmwan_qdrant.store.checks import canonical_id

MAX_K = 1000
"""Most results a request may ask for."""
MAX_PREFETCH = 10_000
"""Most candidates a request may hand to the re-rank."""
MAX_EF = 4096
"""Largest HNSW ``ef`` a request may ask for. Recall@10 is 1.000 from ef=128 at 100k and 1M points
(BENCHMARKS.md); the bound leaves room for k up to `MAX_K` while keeping one request from asking
for a search that visits most of a large collection."""


@dataclass
class SearchAnswer:
    """What one request gets back: ranked results per query, or the error that stopped it.

    Attributes:
        results: one list per sketch (or one for the text), best first; None on error.
        error: the user error (a `DmwanError`) or unexpected exception of this request alone.
        embed_s: seconds of the batch's forward pass this request took part in.
        search_s: seconds of this request's store search.
        batch_size: requests embedded in the same forward pass.
    """

    results: list[list[Result]] | None = None
    error: BaseException | None = None
    embed_s: float = 0.0
    search_s: float = 0.0
    batch_size: int = 1


def _filter_key(filter: dict[str, Any] | None) -> str:
    """A hashable form of a filter, equal for equal filters (lists and objects included), to
    group requests that can search the store in one call."""
    return json.dumps(filter or {}, sort_keys=True, default=repr)


class SearchService:
    """Searches over an open store, with the encoder of each served collection loaded once.

    Not thread-safe: callers run it from one thread (the servers use a one-thread executor).

    Args:
        store: an open store (embedded, server or memory).
        collections: the collections to serve.
        models: optional model bundle per collection (default: the collection's recorded bundle,
            as `dmwan query` loads it).
        device: device for the encoders (default: CUDA when visible).
        runtime: ``auto``, ``torch`` or ``onnx`` (`dmwan_qdrant.encoder.load_bundle`).

    Raises:
        CollectionNotFoundError, CheckpointError, ModelMismatchError: as `dmwan query` would.
    """

    def __init__(
        self,
        store: Store,
        collections: Sequence[str],
        models: dict[str, str | Path] | None = None,
        device: str | None = None,
        runtime: str | None = "auto",
    ) -> None:
        if not collections:
            raise UsageError("serve at least one collection (--collection NAME)")
        self.store = store
        self.device, self.runtime = device, runtime
        self.threads: int | None = None
        self.models: dict[str, Any] = {}
        loaded: dict[tuple[str, str], Any] = {}  # collections filled by one bundle share its encoder
        known = None
        for name in dict.fromkeys(collections):
            if not store.collection_exists(name):
                known = known if known is not None else ", ".join(store.list_collections()) or "none"
                raise CollectionNotFoundError(f"no collection named '{name}' (collections: {known})")
            record = store.get_model_record(name)
            source = (models or {}).get(name) or record.get("bundle")
            key = (str(Path(source).expanduser().resolve()), str(record.get("fingerprint"))) if source else None
            if key in loaded:
                check_same_model(name, record, loaded[key])
                self.models[name] = loaded[key]
                continue
            self.models[name] = load_collection_model(store, name, (models or {}).get(name), device, runtime)
            if key is not None:
                loaded[key] = self.models[name]

    @property
    def collections(self) -> list[str]:
        """The served collection names, in the order given."""
        return list(self.models)

    def model(self, name: str) -> Any:
        """The encoder of a served collection.

        Raises:
            CollectionNotFoundError: ``name`` is not served.
        """
        try:
            return self.models[name]
        except KeyError:
            served = ", ".join(self.models)
            raise CollectionNotFoundError(f"collection '{name}' is not served here (served: {served})") from None

    def info(self, name: str) -> dict[str, Any]:
        """Points, model, vector sizes and index state of a served collection, JSON-able."""
        model = self.model(name)
        ci = self.store.collection_info(name)
        return {
            "name": name,
            "points": ci.points,
            "model": ci.model,
            "vectors": {"global": ci.dim, "tokens": ci.token_dim},
            "index": {"state": ci.index_state, "indexed_vectors": ci.indexed_vectors,
                      "segments": ci.segments, "status": ci.status},
            "backend": ci.backend,
            "text_search": has_text_tower(model),
            "runtime": model.runtime,
        }

    def open_encoders(self, threads: int | None = None) -> None:
        """Make the encoders ready before the first request: an ONNX encoder opens its sessions
        (with ``threads`` intra-op threads, when given); torch runs on ``threads`` threads."""
        self.threads = threads or self.threads
        models = {id(m): m for m in self.models.values()}.values()  # collections may share one
        for model in models:
            if model.runtime == "onnx":
                model.threads = threads or model.threads
                model.warm()
        if threads and any(model.runtime == "torch" for model in models):
            import torch

            torch.set_num_threads(threads)

    def check_ready(self) -> None:
        """Raise the store's error unless every served collection answers."""
        for name in self.models:
            if not self.store.collection_exists(name):
                raise CollectionNotFoundError(f"collection '{name}' is gone from the store")
            self.store.count(name)

    def payload(self, name: str, point_id: str) -> dict[str, Any]:
        """The stored payload of one point of a served collection.

        Raises:
            CollectionNotFoundError: not served, or no such point.
        """
        self.model(name)
        try:
            pid = canonical_id(point_id)
        except StoreError:  # not a point id at all
            raise CollectionNotFoundError(f"collection '{name}' has no point {point_id!r}") from None
        found = self.store.retrieve(name, [pid])
        if not found:
            raise CollectionNotFoundError(f"collection '{name}' has no point {point_id}")
        return found[0]

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[SearchAnswer]:
        """Answer several requests: the sketches of all requests to one collection go through the
        encoder in one forward pass, and requests with the same options search the store in one
        call. An error in one request (an unknown collection, no sketch) is its answer alone."""
        answers = [SearchAnswer(batch_size=len(requests)) for _ in requests]
        by_collection: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            try:
                self.model(req.collection)
                req.check()
            except DmwanError as e:
                answers[i].error = e
                continue
            by_collection.setdefault(req.collection, []).append(i)
        for name, members in by_collection.items():
            self._search_collection(name, [requests[i] for i in members], [answers[i] for i in members])
        return answers

    def current_model(self, name: str) -> Any:
        """The encoder of a served collection, following a model swap: when the collection now
        records other weights than the loaded encoder's (`dmwan collections reindex` moved it
        to another model while this server ran), the recorded model is loaded in its place, so
        searches go on with the model that filled the collection rather than fail."""
        model = self.model(name)
        recorded = self.store.get_model_record(name).get("fingerprint")
        if recorded and recorded != fingerprint_of(model):
            model = load_collection_model(self.store, name, None, self.device, self.runtime)
            if model.runtime == "onnx":
                model.threads = self.threads or model.threads
                model.warm()
            self.models[name] = model
        return model

    def _search_collection(self, name: str, requests: list[SearchRequest], answers: list[SearchAnswer]) -> None:
        try:
            model = self.current_model(name)
        except DmwanError as e:  # the collection's new model cannot be loaded here
            for a in answers:
                a.error = e
            return
        sketch_idx = [i for i, r in enumerate(requests) if r.mode == "sketch"]
        if sketch_idx:
            t0 = time.perf_counter()
            try:
                vectors, tokens = embed_sketch_images(model, [im for i in sketch_idx for im in requests[i].sketches])
            except Exception as e:  # noqa: BLE001 - the batch's error is each member's answer
                for i in sketch_idx:
                    answers[i].error = e
                sketch_idx = []
            embed_s = time.perf_counter() - t0
            rows: dict[int, slice] = {}
            start = 0
            for i in sketch_idx:
                rows[i] = slice(start, start + len(requests[i].sketches))
                start = rows[i].stop
                answers[i].embed_s = embed_s
            # Requests with the same options search the store in one call, as one request would.
            groups: dict[tuple[Any, ...], list[int]] = {}
            for i in sketch_idx:
                r = requests[i]
                groups.setdefault((r.k, _filter_key(r.filter), r.rerank, r.prefetch, r.ef), []).append(i)
            for members in groups.values():
                pick = np.concatenate([np.arange(rows[i].start, rows[i].stop) for i in members])
                self._search_group([answers[i] for i in members], [requests[i].queries for i in members], model,
                                   requests[members[0]], (vectors[pick], tokens[pick]))
        for i, req in enumerate(requests):  # the others one by one, as `dmwan query` runs them
            if req.mode != "sketch":
                self._search_group([answers[i]], [req.queries], model, req)

    def _search_group(self, answers: list[SearchAnswer], counts: list[int], model: Any, request: SearchRequest,
                      embedded: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """`run_search` once for several requests (``request`` stands for them all: their
        options are the same, ``embedded`` holds the rows of all their sketches); each gets its
        ``counts[j]`` result lists."""
        t0 = time.perf_counter()
        try:
            results = run_search(self.store, model, request, embedded)
        except Exception as e:  # noqa: BLE001 - reported to the requests, not raised in the worker
            for a in answers:
                a.error = e
            results = None
        took = time.perf_counter() - t0
        start = 0
        for a, n in zip(answers, counts):
            if results is not None:
                a.results = results[start:start + n]
            a.search_s = took
            start += n

    def close(self) -> None:
        """Close the store."""
        self.store.close()
