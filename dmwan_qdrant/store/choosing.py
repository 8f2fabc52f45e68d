"""Which collection a command uses when none is named: ``$DMWAN_COLLECTION``, else the store's
only one. Only stdlib here: the CLI calls it with the names a store (or a `dmwan serve` holding
it) lists, before it loads a model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from dmwan_qdrant.errors import CollectionNotFoundError, UsageError
from dmwan_qdrant.settings import ENV_COLLECTION


def choose_collection(names: Iterable[str], where: str = "the store",
                      env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The collection to use among ``names`` when the command was given none, and why: the one
    ``$DMWAN_COLLECTION`` names (it must be among ``names``), else the only one there is.

    ``where`` names what holds ``names`` in the messages (``"the store"``, ``"`dmwan serve` at
    URL"``); ``env`` stands for ``os.environ``.

    Returns:
        ``(name, why)``, e.g. ``("shoes", "the only collection in the store")``.

    Raises:
        CollectionNotFoundError: no collection at all (ingest first), or ``$DMWAN_COLLECTION``
            names one that is not there.
        UsageError: several collections and no ``$DMWAN_COLLECTION``: the message lists them.
    """
    listed = sorted(set(names))
    named = ((os.environ if env is None else env).get(ENV_COLLECTION) or "").strip()
    if named:
        if named not in listed:
            held = f"it holds {_names(listed)}" if listed else "it holds none"
            raise CollectionNotFoundError(f"${ENV_COLLECTION} names collection '{named}', which is not in {where} "
                                          f"({held}): pass --collection NAME, or change ${ENV_COLLECTION}")
        return named, f"from ${ENV_COLLECTION}"
    if not listed:
        raise CollectionNotFoundError(f"{where} has no collection yet: fill one first with "
                                      "`dmwan ingest PATH --collection NAME`")
    if len(listed) > 1:
        raise UsageError(f"{where} has {len(listed)} collections ({_names(listed)}): pass --collection NAME "
                         f"(or set ${ENV_COLLECTION})")
    return listed[0], f"the only collection in {where}"


def _names(names: list[str], most: int = 12) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
