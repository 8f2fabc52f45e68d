"""`Replacement`: a collection built beside an existing one, then swapped in under its name.

`Store.begin_replacement` returns one; `dmwan_qdrant.ingest.reindex` fills it with the points of
the collection embedded by another model, then calls `swap`. Until then the collection is
untouched and answers as before. Each backend swaps its own way:

- a Qdrant server and the memory store (`dmwan_qdrant.store.aliases.AliasReplacement`): a new
  physical collection; the swap moves the collection's alias in one atomic call;
- the embedded store (`dmwan_qdrant.store.edge_replacement.EdgeReplacement`): a new shard in a
  staging folder; the swap renames it into place (`dmwan_qdrant.store.folders.swap_in`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from dmwan_qdrant.store.records import CollectionSpec, PhotoPoint


class Replacement(ABC):
    """A new collection for ``name``, of ``spec`` (the new model's record and sizes).

    A context manager: leaving the block with an exception calls `abandon`.

    Attributes:
        name: the collection it replaces.
        spec: what the new collection is.
        resumed: whether it continues the replacement an interrupted run left (its points are
            in `payloads`).
    """

    resumable = False
    """Whether an abandoned replacement is kept, for the next one of the same model to resume."""

    can_keep = True
    """Whether `swap` can keep the old collection under another name."""

    def __init__(self, name: str, spec: CollectionSpec) -> None:
        self.name = name
        self.spec = spec
        self.resumed = False

    @abstractmethod
    def describe(self) -> str:
        """One line on what the replacement does to ``name`` while it runs and when it swaps."""

    @abstractmethod
    def payloads(self) -> dict[str, dict[str, Any]]:
        """The points already in the new collection, as ``{id: payload}``."""

    @abstractmethod
    def upsert(self, points: Sequence[PhotoPoint]) -> None:
        """Write points (of the new model's sizes) into the new collection."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Delete points from the new collection (unknown ids are ignored)."""

    @abstractmethod
    def count(self) -> int:
        """Points in the new collection."""

    @abstractmethod
    def swap(self, keep_as: str | None = None) -> str:
        """Put the new collection in the place of the old one under ``name``; with ``keep_as``,
        keep the old one as collection ``keep_as`` instead of deleting it. Returns one line on
        what was done."""

    @abstractmethod
    def abandon(self) -> None:
        """Stop without swapping; ``name`` stays as it was."""

    def __enter__(self) -> Replacement:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abandon()
