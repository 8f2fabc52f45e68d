"""The alias layout of collections on a Qdrant server (and in the memory store).

A collection ``shoes`` that dmwan-qdrant creates through qdrant-client is two things on the
server: a *physical* collection ``shoes.1f2e3d4c`` (the name, a dot, 8 hex digits) that holds the
points and the model record, and an alias ``shoes`` that points at it. Every request names
``shoes``: Qdrant resolves an alias wherever it takes a collection name (get, upsert, query,
scroll, count, delete points). A collection name given by a user never holds a dot
(`dmwan_qdrant.store.checks.check_name`), so no user name can clash with a physical one.

The layout lets a collection be replaced without a pause (`dmwan collections reindex`): the new
physical collection is built while the alias still points at the old one, then one atomic
``update_collection_aliases`` call moves the alias (`AliasReplacement`). Collections created
before this layout (a physical collection named ``shoes`` itself) keep working as they are and
are converted by their first reindex: Qdrant refuses an alias named like an existing collection,
so the old collection is deleted just before the alias is made, two requests in a row during
which ``shoes`` does not exist.

What `Layout.names` lists: every alias that points at a physical collection, and every other
collection whose name is not a physical one. Physical collections no alias points at are
leftovers of an interrupted create or reindex: hidden, resumed by the next reindex of their
collection, deleted with it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qdrant_client import models as qm

from dmwan_qdrant.errors import DmwanError
from dmwan_qdrant.store.checks import check_points
from dmwan_qdrant.store.records import CollectionSpec, PhotoPoint
from dmwan_qdrant.store.replacement import Replacement

if TYPE_CHECKING:
    from dmwan_qdrant.store.client import ClientStore

_PHYSICAL = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,63})\.(?P<tag>[0-9a-f]{8})$")

REPLACES = "replaces"
"""Key of a physical collection's record: the physical collection it is being built to replace
(its owner's own name for a collection from before the alias layout)."""


def physical_name(name: str) -> str:
    """A new physical collection name for collection ``name``."""
    return f"{name}.{uuid.uuid4().hex[:8]}"


def owner(physical: str) -> str | None:
    """The collection a physical collection name belongs to; None for any other name."""
    m = _PHYSICAL.match(physical)
    return m.group("name") if m else None


@dataclass(frozen=True)
class Layout:
    """The server's collections and aliases, read together (`ClientStore.layout`).

    Attributes:
        collections: names of the physical collections.
        aliases: alias name -> the collection it points at.
    """

    collections: frozenset[str]
    aliases: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        """The collection names a user sees, sorted (see the module doc)."""
        named = {a for a, target in self.aliases.items() if target in self.collections and owner(target)}
        return sorted(named | {c for c in self.collections if owner(c) is None})

    def target(self, name: str) -> str | None:
        """The physical collection behind ``name``: its alias's target, or a collection of that
        name (from before the alias layout); None when there is neither."""
        if name in self.aliases:
            return self.aliases[name]
        return name if name in self.collections else None

    def unaliased(self, name: str) -> list[str]:
        """The physical collections of ``name`` no alias points at (leftovers), sorted."""
        held = set(self.aliases.values())
        return sorted(c for c in self.collections if owner(c) == name and c not in held)


def alias_actions(name: str, target: str, replacing: bool, keep_as: tuple[str, str] | None = None) -> list[Any]:
    """The actions of one atomic alias update: ``name`` (re)pointed at ``target``, and with
    ``keep_as`` = ``(alias, collection)`` a second alias made."""
    actions: list[Any] = []
    if replacing:
        actions.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=name)))
    actions.append(qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=target, alias_name=name)))
    if keep_as is not None:
        alias, collection = keep_as
        actions.append(qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=collection, alias_name=alias)))
    return actions


class AliasReplacement(Replacement):
    """A new physical collection built beside the one the alias ``name`` points at, swapped in
    by moving the alias (see the module doc and `Replacement`).

    Built into a leftover of an earlier, interrupted reindex when one matches (same model, same
    collection replaced): its points are kept, and `payloads` returns them. Other leftovers of
    ``name`` are deleted. An abandoned replacement is kept on the server for the next run.
    """

    resumable = True

    def __init__(self, store: ClientStore, name: str, spec: CollectionSpec) -> None:
        super().__init__(name, spec)
        self._store = store
        layout = store.layout()
        old = layout.target(name)
        assert old is not None, "the caller checked that the collection exists"
        self.old = old
        self.converts = name not in layout.aliases
        self.can_keep = not self.converts  # converting frees the name: the old collection goes
        self.physical = ""
        for leftover in layout.unaliased(name):
            if not self.physical and self._matches(store.physical_record(leftover)):
                self.physical = leftover
                self.resumed = True
            else:
                store.drop_physical(name, leftover)
        if not self.physical:
            self.physical = physical_name(name)
            store.create_physical(name, self.physical, spec, {REPLACES: old})

    def _matches(self, record: dict[str, Any] | None) -> bool:
        if not record or record.get(REPLACES) != self.old:
            return False
        mine = self.spec.model.get("fingerprint")
        return bool(mine) and record.get("model", {}).get("fingerprint") == mine and (
            record.get("dim"), record.get("token_dim")) == (self.spec.dim, self.spec.token_dim)

    def describe(self) -> str:
        if self.converts:
            return (f"'{self.name}' keeps answering searches with its current model while the new collection "
                    f"{self.physical} is built; it predates the alias layout, so at the end the old collection is "
                    f"deleted and the alias '{self.name}' made at once: between those two requests searches of "
                    f"'{self.name}' find no collection")
        return (f"'{self.name}' keeps answering searches with its current model while the new collection "
                f"{self.physical} is built; the alias then moves to it in one atomic step")

    def payloads(self) -> dict[str, dict[str, Any]]:
        return dict(self._store.scroll_physical(self.name, self.physical))

    def upsert(self, points: Sequence[PhotoPoint]) -> None:
        rows = check_points(self.name, points, self.spec.dim, self.spec.token_dim)
        for batch in self._store._batches(rows):
            self._store._write(self.physical, batch)

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._store._delete(self.physical, list(ids))

    def count(self) -> int:
        return self._store._count(self.physical, None)

    def swap(self, keep_as: str | None = None) -> str:
        store, name = self._store, self.name
        if self.converts:
            # Qdrant refuses an alias named like a collection: the old one goes first.
            store.drop_physical(name, self.old)
            try:
                store.update_aliases(name, alias_actions(name, self.physical, replacing=False))
            except DmwanError as e:
                raise type(e)(f"{e}: the old collection '{name}' is deleted and the new one, complete, is "
                              f"{self.physical}; run the same command again to name it '{name}'") from None
            return (f"'{name}' converted to the alias layout: the old collection was deleted and the alias "
                    f"'{name}' made, pointing at {self.physical}")
        keep = (keep_as, self.old) if keep_as else None
        store.update_aliases(name, alias_actions(name, self.physical, replacing=True, keep_as=keep))
        moved = f"the alias '{name}' moved to {self.physical} in one step"
        if keep_as:
            return f"{moved}; the old collection {self.old} is kept as '{keep_as}'"
        try:
            store.drop_physical(name, self.old)
        except DmwanError as e:  # swapped all the same: the old one is a leftover the next run deletes
            return (f"{moved}; the old collection {self.old} could not be deleted ({e}): the next reindex or "
                    f"`dmwan collections delete {name}` deletes it")
        return f"{moved}; the old collection {self.old} was deleted"

    def abandon(self) -> None:
        """Keep the partial collection: the next reindex with the same model resumes it."""
