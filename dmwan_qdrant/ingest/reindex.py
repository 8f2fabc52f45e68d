"""Reindex: every photo of a collection embedded again by another model, swapped in at the end.

`reindex_collection` reads the collection's points (their payloads: path, content hash, label,
the known duplicates...), reads each photo again from its stored path (or from a duplicate's,
when that one is gone) with the ingest's own decoding (`dmwan_qdrant.ingest.run.decoded_batches`),
embeds it with the new model and writes a point of the same id and the same payload into a new
collection built beside the old one (`dmwan_qdrant.store.replacement.Replacement`). Only once
that holds every point is it put in the old one's place:

- on a Qdrant server (and in the memory store) the collection's alias moves in one atomic call,
  so searches by the collection's name are answered by the old model until that instant and by
  the new one after it (`dmwan_qdrant.store.aliases`);
- in the embedded store the new shard is renamed into place; the store stays locked by the
  process meanwhile, so nothing else searches it.

A photo whose file is gone, or holds other bytes than the stored point, cannot be embedded again.
By default the reindex then refuses and changes nothing (`PhotosMissingError`); with
``drop_missing`` those points are left out of the new collection and listed in the report.

Points added, changed or deleted in the old collection while a server reindex runs (an ingest
with the old model) are caught up before the swap: the collection is read again and the
difference applied, until a pass finds none.

Interrupted (Ctrl-C, a crash, an error), a reindex leaves the collection as it was. On a server
the partial new collection stays, invisible, and the same command run again continues it: the
points already written with the same payload are not embedded again, and ids are content hashes,
so nothing is written twice. The embedded store starts over.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..encoder import describe_record, model_record
from ..errors import PhotosMissingError, UsageError
from ..imageio import MAX_IMAGE_PIXELS
from ..store import CollectionSpec, PhotoPoint, Store
from ..store.checks import check_name
from ..store.index import IndexSettings
from ..store.replacement import Replacement
from .decode import FileEntry
from .records import alias_list, stop_messages, stop_reason
from .report import IngestProgress
from .run import decoded_batches

MAX_PASSES = 4
"""Reads of the old collection at most: the first, then catch-ups until one finds nothing new."""

LISTED = 5
"""Paths named in a message about photos that cannot be embedded again."""


@dataclass
class ReindexReport:
    """What a reindex did.

    Attributes:
        collection: the collection reindexed.
        backend: the store's backend (``edge``, ``server``, ``memory``).
        old_model: the model record the collection had.
        new_model: the model record it has now.
        points: points the collection held when the run started.
        reembedded: points embedded with the new model in this run.
        resumed: points an interrupted run had already embedded (not embedded again).
        left_out: ``(path, why)`` of the points not carried over (with ``drop_missing``).
        after: points in the collection after the swap.
        already: the collection was filled by that model already: nothing was done.
        finished_swap: the collection was missing, in the middle of an interrupted reindex's
            swap, and that swap was finished first (`Store.finish_interrupted_swap`).
        plan: what the reindex did to the collection while it ran (one line).
        swap: how the new collection took the old one's place (one line).
        seconds: wall time of the run.
    """

    collection: str
    backend: str
    old_model: dict[str, Any] = field(default_factory=dict)
    new_model: dict[str, Any] = field(default_factory=dict)
    points: int = 0
    reembedded: int = 0
    resumed: int = 0
    left_out: list[tuple[str, str]] = field(default_factory=list)
    after: int = 0
    already: bool = False
    finished_swap: bool = False
    plan: str = ""
    swap: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (``left_out`` as a list of ``{"path", "why"}``)."""
        d = asdict(self)
        d["left_out"] = [{"path": p, "why": w} for p, w in self.left_out]
        d["seconds"] = round(self.seconds, 3)
        return d


Source = dict[str, dict[str, Any]]
"""The old collection's points: ``{id: payload}``."""


def reindex_collection(
    store: Store,
    name: str,
    model: Any,
    *,
    drop_missing: bool = False,
    keep_old: str | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    notice: Callable[[str], None] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> ReindexReport:
    """Fill collection ``name`` anew with ``model``'s embeddings of its photos (see module doc).

    Args:
        store: an open, writable `Store`.
        name: the collection.
        model: an encoder of either runtime (`dmwan_qdrant.encoder.load_bundle`); its record
            becomes the collection's.
        drop_missing: leave out the points whose photo cannot be read again (gone, changed,
            unreadable) instead of refusing.
        keep_old: keep the old collection under this name instead of deleting it.
        batch_size: images per forward pass and per write.
        num_workers: decoding workers (None: `dmwan_qdrant.ingest.default_workers`).
        progress: called after each batch; an exception it raises stops the run (the
            collection stays as it was).
        notice: called once with one line on what the run does to the collection while it
            runs, before the first photo is read.
        max_pixels: larger images are refused as decompression bombs.

    Raises:
        CollectionNotFoundError: no such collection.
        PhotosMissingError: photos that cannot be embedded again, without ``drop_missing``;
            nothing changed.
        UsageError: a bad batch size, or ``keep_old`` naming a collection that exists.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    start = time.perf_counter()
    new = model_record(model)
    report = ReindexReport(name, store.backend, new_model=new)
    report.finished_swap = not store.collection_exists(name) and store.finish_interrupted_swap(name)
    report.old_model = old = store.get_model_record(name)  # raises for a missing collection
    if old.get("fingerprint") and old["fingerprint"] == new["fingerprint"]:
        report.already = True
        report.points = report.after = store.count(name)
        report.seconds = time.perf_counter() - start
        return report
    if keep_old is not None and store.collection_exists(check_name(keep_old)):
        raise UsageError(f"cannot keep the old collection as '{keep_old}': a collection of that name exists")
    index = store.collection_info(name).index or IndexSettings()
    spec = CollectionSpec(int(new["dim"]), int(new["token_dim"]), new, index)
    source: Source = dict(store.scroll_payloads(name))
    report.points = len(source)
    gone = {pid: why for pid, why in ((pid, _locate(p)[1]) for pid, p in source.items()) if why}
    if gone and not drop_missing:
        raise PhotosMissingError(_missing(name, [(_path(source[p]), w) for p, w in gone.items()], len(source), "is"))
    with store.begin_replacement(name, spec) as rep:
        if keep_old is not None and not rep.can_keep:
            raise UsageError(f"'{name}' predates the alias layout: its reindex deletes the old collection to free "
                             "the name for the alias, so it cannot be kept; run without --keep-old")
        report.plan = rep.describe()
        if notice is not None:
            notice(report.plan)
        run = _Run(store, name, model, rep, report, source, progress, start)
        with _stop_messages(run):
            run.build(batch_size, num_workers, max_pixels)
        lost = [run.left[pid] for pid in run.left if pid in run.source]
        if lost and not drop_missing:
            kept = " (the photos embedded so far are kept for the next run)" if rep.resumable else ""
            raise PhotosMissingError(_missing(name, lost, len(run.source), "was") + kept)
        report.left_out = lost
        report.swap = rep.swap(keep_old)
    report.after = store.count(name)
    report.seconds = time.perf_counter() - start
    return report


class _Run:
    """The build of one reindex: what the new collection holds, what is left out, progress."""

    def __init__(self, store: Store, name: str, model: Any, rep: Replacement, report: ReindexReport,
                 source: Source, progress: Callable[[IngestProgress], None] | None, start: float) -> None:
        self.store, self.name, self.model, self.rep, self.report = store, name, model, rep, report
        self.source = source
        self.progress = progress
        self.start = start
        self.current: Source = rep.payloads()  # what the new collection holds
        self.left: dict[str, tuple[str, str]] = {}  # id -> (path, why): not carried over
        report.resumed = sum(1 for pid, p in source.items() if self.current.get(pid) == p)

    def done(self) -> int:
        return self.report.resumed + self.report.reembedded + len(self.left)

    def tick(self) -> None:
        if self.progress is not None:
            self.progress(IngestProgress(self.done(), len(self.source), self.report.reembedded, len(self.left),
                                         time.perf_counter() - self.start))

    def build(self, batch_size: int, num_workers: int | None, max_pixels: int) -> None:
        """Embed what the new collection lacks, then read the old one again and catch up with
        what changed in it meanwhile, until a pass finds nothing."""
        self.tick()
        for n in range(MAX_PASSES):
            if n:
                self.source = dict(self.store.scroll_payloads(self.name))
            stale = [pid for pid in self.current if pid not in self.source]
            todo: list[tuple[str, dict[str, Any], FileEntry]] = []
            for pid, payload in self.source.items():
                if pid in self.left or self.current.get(pid) == payload:
                    continue
                entry, why = _locate(payload)
                if entry is None:
                    self.left[pid] = (_path(payload), why)
                else:
                    todo.append((pid, payload, entry))
            if not stale and not todo:
                return
            self.rep.delete(stale)
            for pid in stale:
                del self.current[pid]
            if todo:
                self._embed(todo, batch_size, num_workers, max_pixels)

    def _embed(self, todo: list[tuple[str, dict[str, Any], FileEntry]], batch_size: int,
               num_workers: int | None, max_pixels: int) -> None:
        at = 0
        for items, embed in decoded_batches([t[2] for t in todo], self.model, batch_size, num_workers, max_pixels):
            rows: list[int] = []  # rows of the batch's good items to embed
            keep: list[tuple[str, dict[str, Any]]] = []
            good = 0
            for it in items:
                pid, payload, _ = todo[at]
                at += 1
                if "error" in it:
                    self.left[pid] = (it["path"], it["error"])
                    continue
                good += 1
                stored = payload.get("content_hash")
                if stored and it["content_hash"] != stored:
                    self.left[pid] = (it["path"], "the file holds other bytes than when it was stored")
                    continue
                rows.append(good - 1)
                keep.append((pid, payload))
            if rows:
                vectors, tokens = embed(rows)
                self.rep.upsert([PhotoPoint(pid, vectors[j], tokens[j], payload)
                                 for j, (pid, payload) in enumerate(keep)])
                self.current.update(keep)
                self.report.reembedded += len(rows)
            self.tick()


def _path(payload: dict[str, Any]) -> str:
    path = payload.get("path")
    return path if isinstance(path, str) else "(no path)"


def _locate(payload: dict[str, Any]) -> tuple[FileEntry | None, str]:
    """The file to embed a stored point from: its own path, else a known duplicate's (the same
    bytes under another path); or None and why there is none."""
    paths = [payload.get("path")] + [a["path"] for a in alias_list(payload)]
    for path in paths:
        if not isinstance(path, str):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return (path, st.st_size, st.st_mtime_ns), ""
    return None, "file gone" if isinstance(payload.get("path"), str) else "the point records no path"


def _missing(name: str, lost: list[tuple[str, str]], total: int, tense: str) -> str:
    """One line on the photos that cannot be embedded again, naming the first few."""
    first = "; ".join(f"{p} ({w})" for p, w in lost[:LISTED]) + ("; ..." if len(lost) > LISTED else "")
    return (f"{len(lost)} of {total} photos of '{name}' cannot be embedded again: {first}; '{name}' {tense} left "
            "as it was: restore the files, or run again with --drop-missing to leave their points out")


def _stop_messages(run: _Run) -> Any:
    """A run stopped by a signal, a full disk or a dead decoding worker: one line that says the
    collection is unchanged, how far the build got and what to do next (`stop_messages`)."""

    def line() -> str:
        kept = "the photos embedded so far are kept for it" if run.rep.resumable else "it starts over"
        return (f"{run.done()} of {len(run.source)} photos handled; '{run.name}' is unchanged and still answers "
                f"with model {describe_record(run.report.old_model)}; run the same command again to finish ({kept})")

    return stop_messages(lambda why: f"{stop_reason(why)}: {line()}", line)
