"""One search, of any kind, and the one dispatch of the kinds: `dmwan query` and the server (`dmwan
serve`, Ray Serve) both describe a query as a `SearchRequest` and answer it with `run_search`.

The kinds: sketches (decoded images, embedded as sketches), a text (the CLIP text tower), photos
("more like this photo", embedded as photos) and stored point ids ("more like this point").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ..store import Store
from .core import search_sketch_embeddings, search_sketch_images, search_text
from .reranking import DEFAULT_PREFETCH
from .results import Result
from .similar import search_like, search_photos

MODES = ("sketch", "text", "photo", "like")
"""The kinds of query, as `SearchRequest.mode` names them."""


@dataclass
class SearchRequest:
    """One search: decoded sketches (PIL RGB images), a text, photos or point ids, and the
    options of `dmwan query`.

    Attributes:
        collection: the collection to search.
        sketches: RGB images, searched each on its own (empty for the other kinds).
        text: the text query, or None.
        k: results per query.
        filter: payload conditions in the store's structure (exact values, any-of lists,
            ranges, prefixes: see `dmwan_qdrant.store.filters`), e.g. from
            `dmwan_qdrant.search.parse_filters`.
        rerank: re-rank the top ``prefetch`` by the fused global and local-token score
            (not for text; None: as the collection's model's bundle chose, `bundle_rerank`).
        prefetch: candidates for the re-rank.
        photos: RGB images embedded as photos ("more like this photo"), each on its own.
        like: stored point ids ("more like this point"), each on its own.
        ef: HNSW search candidates (None: the collection's default, see `IndexSettings`).
    """

    collection: str
    sketches: list[Any] = field(default_factory=list)
    text: str | None = None
    k: int = 10
    filter: dict[str, Any] | None = None
    rerank: bool | None = None
    prefetch: int = DEFAULT_PREFETCH
    photos: list[Any] = field(default_factory=list)
    like: list[str] = field(default_factory=list)
    ef: int | None = None

    @property
    def mode(self) -> str:
        """What the request searches with (one of `MODES`): "text", "photo", "like" or "sketch"."""
        return "text" if self.text is not None else "photo" if self.photos else "like" if self.like else "sketch"

    @property
    def queries(self) -> int:
        """How many result lists the request gets: one per sketch, photo or point id, one for a text."""
        return 1 if self.text is not None else len(self.photos or self.like or self.sketches)

    def check(self) -> None:
        """Raise `UsageError` when the request holds no query at all."""
        if self.text is None and not (self.sketches or self.photos or self.like):
            raise UsageError("give at least one sketch, or a text, a photo or a point id")


def run_search(
    store: Store, model: Any, request: SearchRequest, embedded: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[list[Result]]:
    """The results of ``request``, one list per query, best first: the search of its kind
    (`search_sketch_images`, `search_text`, `search_photos` or `search_like`), which checks the
    collection and ``model`` once, before its work.

    Args:
        store: an open store.
        model: the collection's encoder (a bundle loaded for it: the search checks that it is
            the collection's).
        request: what to search.
        embedded: for a sketch request, its sketches already embedded (``(vectors, tokens)``,
            from `embed_sketch_images`), which then stand for ``request.sketches``; the server
            embeds the sketches of several requests in one forward pass and searches the rows of
            the requests with the same options in one call.

    Raises:
        CollectionNotFoundError, ModelMismatchError, UsageError (no query, an empty text, a
        model without a text tower, a point id not in the collection, a bad ``ef`` or filter).
        ValueError: ``embedded`` for a request that is not a sketch request.
    """
    request.check()
    mode = request.mode
    if embedded is not None and mode != "sketch":
        raise ValueError(f"embedded sketches given for a {mode} request")
    r = request
    if mode == "text":
        return search_text(store, r.collection, model, r.text, r.k, r.filter, r.ef)
    if mode == "photo":
        return search_photos(store, r.collection, model, r.photos, r.k, r.filter, r.rerank, r.prefetch, r.ef)
    if mode == "like":
        return search_like(store, r.collection, model, r.like, r.k, r.filter, r.rerank, r.prefetch, r.ef)
    if embedded is None:
        return search_sketch_images(store, r.collection, model, r.sketches, r.k, r.filter, r.rerank, r.prefetch, r.ef)
    vectors, tokens = embedded
    return search_sketch_embeddings(store, r.collection, model, vectors, tokens, r.k, r.filter, r.rerank, r.prefetch,
                                    r.ef)
