"""What an ingest keeps in a collection besides the points, and its one-line stop message.

- Aliases: the other files with the same content as a stored point (exact duplicates), kept in
  the point's payload so that a re-run does not decode them again.
- The ingest record: the point count and the folders of the last finished ingest, so that
  ``dmwan collections check`` can tell a collection that lost points, and restore them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import DiskFullError, DmwanError, Interrupted
from .. import interrupts
from ..interrupts import STOP_REASONS
from ..store import Store

ALIASES = "aliases"
"""Payload field of a point: the other files with the same content, ``[{path, size, mtime_ns}]``."""


def alias_list(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The well-formed alias entries of a payload."""
    value = payload.get(ALIASES)
    return [a for a in value if isinstance(a, dict) and isinstance(a.get("path"), str)] if isinstance(value, list) else []


def add_aliases(store: Store, collection: str, pid: str, added: list[dict[str, Any]]) -> None:
    """Record duplicate files of point ``pid`` in its payload (one entry per path)."""
    current = store.retrieve(collection, [pid])
    if not current:
        return
    known = {a["path"]: a for a in alias_list(current[0])}
    merged = {**known, **{a["path"]: a for a in added if a["path"] != current[0].get("path")}}
    if merged != known:
        store.update_payload(collection, pid, {ALIASES: [merged[k] for k in sorted(merged)]})


def signum_args(e: DmwanError) -> tuple[int, ...]:
    """The extra constructor argument that re-raising ``e`` with a new message needs."""
    return (e.signum,) if isinstance(e, Interrupted) else ()


def stopped_message(e: DmwanError, store: Store, collection: str, done: int, found: int) -> str:
    """One line for a run stopped by a signal or a full disk: why, what is stored, what next."""
    try:
        store.flush()  # what the engine acknowledged is in its log already; this skips a replay
    except DmwanError:
        pass
    try:
        held = f"{store.count(collection)} points are stored in '{collection}'"
    except DmwanError:
        held = f"the points written before are kept in '{collection}'"
    return stop_line(e, f"{done} of {found} files handled", held)


def stop_reason(e: DmwanError) -> str:
    """Why a run stopped, as its line starts: the signal, or the error's own words."""
    return STOP_REASONS.get(e.signum, "interrupted") if isinstance(e, Interrupted) else str(e)


def stop_line(e: DmwanError, handled: str, held: str) -> str:
    """A stopped run's line from its parts: why (`stop_reason`), ``handled`` (how far it got),
    ``held`` (what is stored), and what to do next."""
    again = "free some space and run the same command again" if isinstance(e, DiskFullError) else "run the same command again"
    return f"{stop_reason(e)}: {handled}, {held}; {again} to finish"


@contextlib.contextmanager
def stop_messages(describe: Callable[[DmwanError], str], hint: Callable[[], str]) -> Iterator[None]:
    """Turn a run stopped by a signal, a full disk or a dead decoding worker into one line,
    ``describe(why)`` (what is stored, what to do next), raised as the stop's own error class.
    ``hint`` is the watchdog's line (`dmwan_qdrant.interrupts.stop_hint`): plain values only."""
    try:
        with interrupts.stop_hint(hint):
            yield
    except (Interrupted, DiskFullError) as e:
        raise type(e)(describe(e), *signum_args(e)) from None
    except (Exception, KeyboardInterrupt) as e:
        stopped = interrupts.pending()
        if stopped is not None:
            # The signal's Interrupted, turned into something else on its way here: a
            # KeyboardInterrupt when it came during an import (Ray Data imports as it runs), or
            # another error from code that caught it (Ray's own wrappers). The same stop.
            raise Interrupted(describe(stopped), stopped.signum) from None
        if not isinstance(e, RuntimeError) or ("DataLoader worker" not in str(e) and "process pool" not in str(e)):
            raise
        # A decoding worker killed from outside (the OOM killer, a stray SIGTERM): the run stops
        # like an interrupted one, with what it stored.
        raise DmwanError(describe(DmwanError(f"a decoding worker died ({str(e).splitlines()[0].rstrip('. ')})"))) from None


def record_ingest(store: Store, collection: str, roots: list[Path], label_from_folder: bool,
                  include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
    """Keep with the collection what a finished ingest leaves: its point count (so that a later
    `check` sees a collection that lost points), the roots to restore them from, and the
    ``--include`` / ``--exclude`` patterns each root was read with."""
    previous = store.ingest_record(collection) or {}
    known = [r for r in previous.get("roots", []) if isinstance(r, str)]
    patterns = {k: v for k, v in (previous.get("patterns") or {}).items() if isinstance(v, dict)}
    for root in roots:
        if include or exclude:
            patterns[str(root)] = {"include": list(include), "exclude": list(exclude)}
        else:
            patterns.pop(str(root), None)
    store.set_ingest_record(
        collection,
        {
            "points": store.count(collection),
            "roots": sorted(set(known) | {str(r) for r in roots}),
            "patterns": patterns,
            "label_from_folder": bool(label_from_folder),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def root_patterns(record: dict[str, Any], root: str) -> tuple[list[str], list[str]]:
    """The ``(include, exclude)`` patterns ``root`` was last ingested with (see `record_ingest`)."""
    got = (record.get("patterns") or {}).get(root) or {}
    return list(got.get("include") or []), list(got.get("exclude") or [])
