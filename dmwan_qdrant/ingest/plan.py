"""The plan of an ingest, and its last step.

`plan_ingest` reads what the collection holds by path, walks the given paths and ``stat``s each
image file: a file whose path, size and mtime are stored is *unchanged* and is neither read nor
decoded; the others are the files to read. `finish_ingest` then relabels, deletes the stale
versions of changed files (and with ``prune`` the points of files gone), flushes, records the run
and exports. Both ingest paths (one process, Ray Data) share them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..encoder import check_same_model, model_record
from ..errors import UsageError
from ..imageio import IMAGE_SUFFIXES
from .selection import Selection, walk_images
from ..store import CollectionSpec, Store
from .decode import FileEntry
from .records import ALIASES, alias_list, record_ingest
from .report import IngestReport

_DELETE_BATCH = 1000

Stored = tuple[str, Any, Any]
"""A stored point of a path: ``(id, size, mtime_ns)``."""


@dataclass
class IngestPlan:
    """What a run will do, from the collection's payloads and one walk of the paths.

    Attributes:
        exists: whether the collection existed before the run.
        stored: the stored points by path (several after a crash between writing a file's new
            version and deleting its old one).
        aliases: the other paths of a content stored once (exact duplicates), by path.
        labels: the stored label by point id.
        walked: every image path found.
        keep: the ids of unchanged files.
        todo: the files to read, sorted.
        skipped: files not read again (unchanged, and known duplicates of unchanged files).
    """

    exists: bool
    stored: dict[str, list[Stored]] = field(default_factory=dict)
    aliases: dict[str, Stored] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    walked: set[str] = field(default_factory=set)
    keep: set[str] = field(default_factory=set)
    todo: list[FileEntry] = field(default_factory=list)
    skipped: int = 0


def plan_ingest(
    paths: Sequence[str | Path],
    store: Store,
    collection: str,
    model: Any,
    selection: Selection,
    prune: bool,
    report: IngestReport,
) -> IngestPlan:
    """Check the paths and the model, read the collection's state and walk the paths.

    Counts ``found``, ``unchanged``, known ``duplicates`` and unreadable entries in ``report``.

    Raises:
        UsageError: a path that does not exist, or no image file under the paths.
        ModelMismatchError: the collection was filled by another model.
    """
    for p in paths:  # before creating anything: a typo must not leave an empty collection
        if not os.path.lexists(Path(p).expanduser()):
            raise UsageError(f"{p}: no such file or folder")
    plan = IngestPlan(exists=store.collection_exists(collection))
    if plan.exists:
        check_same_model(collection, store.get_model_record(collection), model)
        for pid, payload in store.scroll_payloads(collection, ["path", "size", "mtime_ns", "label", ALIASES]):
            plan.labels[pid] = payload.get("label")
            if isinstance(payload.get("path"), str):
                plan.stored.setdefault(payload["path"], []).append((pid, payload.get("size"), payload.get("mtime_ns")))
            for a in alias_list(payload):
                plan.aliases[a["path"]] = (pid, a.get("size"), a.get("mtime_ns"))
    _walk(paths, selection, plan, report)
    plan.skipped = report.unchanged + report.duplicates
    if report.found == 0 and not (plan.exists and prune):
        where = ", ".join(str(p) for p in paths)
        kinds = " ".join(sorted(IMAGE_SUFFIXES))
        outcome = "nothing was stored" if plan.exists else f"collection '{collection}' was not created"
        matching = f" matching {selection.describe()}" if selection else ""
        raise UsageError(f"no image files under {where}{matching} (the suffixes read: {kinds}): {outcome}")
    return plan


def create_if_missing(store: Store, collection: str, plan: IngestPlan, model: Any) -> None:
    """Create the collection with ``model``'s record unless it existed."""
    if not plan.exists:
        rec = model_record(model)
        store.create_collection(collection, CollectionSpec(rec["dim"], rec["token_dim"], rec))


def _walk(paths: Sequence[str | Path], selection: Selection, plan: IngestPlan, report: IngestReport) -> None:
    """Walk and stat: the paths walked, the ids of unchanged files, the files to read."""
    known_duplicates: list[tuple[str, str, int, int]] = []
    for f in walk_images(paths, selection):
        path = str(f)
        plan.walked.add(path)
        report.found += 1
        try:
            st = os.stat(path)
        except OSError as e:
            report.failed.append((path, "no such file" if isinstance(e, FileNotFoundError) else e.strerror or str(e)))
            continue
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block the reader forever
            why = "folder cannot be listed" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            report.failed.append((path, why))
            continue
        # mtime_ns, an exact integer: engines may round a float mtime in the last digit.
        match = [pid for pid, size, mtime in plan.stored.get(path, ()) if size == st.st_size and mtime == st.st_mtime_ns]
        alias = plan.aliases.get(path)
        if match:
            report.unchanged += 1
            plan.keep.add(match[0])
        elif alias is not None and (alias[1], alias[2]) == (st.st_size, st.st_mtime_ns):
            known_duplicates.append((alias[0], path, st.st_size, st.st_mtime_ns))
        else:
            plan.todo.append((path, st.st_size, st.st_mtime_ns))
    # A known duplicate is skipped only while the file it duplicates is unchanged too; else it is
    # read again, and may become the content's main path.
    for pid, path, size, mtime_ns in known_duplicates:
        if pid in plan.keep:
            report.duplicates += 1
        else:
            plan.todo.append((path, size, mtime_ns))
    plan.todo.sort()


def finish_ingest(
    paths: Sequence[str | Path],
    store: Store,
    collection: str,
    plan: IngestPlan,
    written: set[str],
    report: IngestReport,
    *,
    selection: Selection,
    label_from_folder: bool,
    prune: bool,
    export: str | Path | None,
) -> None:
    """Relabel, delete stale points, flush, record the run and export (see the module doc).

    ``written``: the ids written, or confirmed as another file's duplicate, in this run.
    """
    if label_from_folder:  # a labelling that changed needs no new embedding: payload only
        for path, entries in plan.stored.items():
            for pid, _, _ in entries:
                if pid in plan.keep and plan.labels.get(pid) != Path(path).parent.name:
                    store.update_payload(collection, pid, {"label": Path(path).parent.name})
                    report.updated += 1
                    report.unchanged -= 1
    # Stale points: older versions of walked files, and (prune) files gone from under the roots.
    # Points that the globs exclude are out of this run's reach.
    roots = [Path(p).expanduser().resolve() for p in paths]
    if not prune:
        report.missing = sum(
            len(e) for p, e in plan.stored.items() if p not in plan.walked and selection.covers(p, roots)
        )
    stale = [
        pid
        for path, entries in plan.stored.items()
        for pid, _, _ in entries
        if pid not in plan.keep
        and pid not in written
        and (path in plan.walked or (prune and selection.covers(path, roots)))
    ]
    for i in range(0, len(stale), _DELETE_BATCH):
        store.delete_points(collection, stale[i : i + _DELETE_BATCH])
    report.pruned = len(stale)
    store.flush()
    record_ingest(store, collection, roots, label_from_folder,
                  [g.pattern for g in selection.include], [g.pattern for g in selection.exclude])
    if export is not None:
        from .export import export_points, exported_ids

        ids = [i for i, _ in exported_ids(store, collection, plan.walked)]
        report.export = export_points(store, collection, ids, export).to_dict()
