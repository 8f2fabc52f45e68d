"""Ingest: embed a photo folder into a collection, incrementally, idempotently, robustly.

1. Walk the paths (recursively, sorted, hidden entries skipped, include/exclude globs applied:
   see `dmwan_qdrant.selection`) and ``stat`` each image file. A file whose path, size and mtime
   are stored is *unchanged*: neither read nor decoded.
2. The other files are hashed (SHA-256), decoded and preprocessed in DataLoader workers, which
   overlap the encoder. A bad file comes back as an error marker and never stops a run.
3. Point ids are UUIDs made from content hashes, so a duplicate or a renamed file maps onto the
   point already there: new content is embedded and upserted, a renamed file re-points the stored
   point, an exact duplicate of a file still in place adds nothing.
4. At the end, stale versions of changed files are deleted, and with ``prune`` the points under
   the given paths whose file is gone (points the globs exclude are left alone). With ``export``
   the points of the files found are then written to a file (`dmwan_qdrant.export`).

Crash safety: a point's vectors and payload are written in one upsert, so a point that exists is
complete and the *unchanged* skip (which trusts stored payloads) only ever trusts whole points.
Nothing else is recorded about a run, so a run killed at any moment and started again converges
to the same collection: ids are content hashes (upserts are idempotent) and stale versions left
by the kill are recognised as such on the next run.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .encoder import check_same_model, encoder_threads, model_record, usable_cores
from .errors import DiskFullError, DmwanError, ImageError, Interrupted, UsageError
from .imageio import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, load_image
from .ingest_records import (
    ALIASES,
    add_aliases,
    alias_list,
    record_ingest,
    signum_args,
    stopped_message,
)
from .point_ids import point_id, sha256_file
from .selection import Selection, walk_images
from .store import CollectionSpec, PhotoPoint, Store

_DELETE_BATCH = 1000


@dataclass
class IngestProgress:
    """Where a running ingest stands; passed to the ``progress`` callback after each batch."""

    done: int  # files handled so far (unchanged ones included)
    total: int  # image files found
    decoded: int  # files read and decoded so far
    failed: int
    elapsed: float  # seconds since the start

    @property
    def images_per_second(self) -> float:
        """Decoded-and-embedded images per second so far."""
        return self.decoded / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class IngestReport:
    """What an ingest did.

    Attributes:
        found: image files found under the given paths.
        added: new points (content not in the collection before).
        updated: points rewritten: a renamed or moved file, or a touched file (new mtime).
        unchanged: files skipped because path, size and mtime matched the stored point.
        duplicates: files whose content is already stored under another existing path.
        pruned: points deleted: stale versions of changed files, and (with ``prune``) files gone.
        missing: points under the given paths whose file is gone (kept: ``prune`` drops them).
        failed: ``(path, reason)`` for every file that could not be read.
        decoded: files read, hashed and decoded in this run.
        seconds: wall time of the run.
        export: what ``export`` wrote (`dmwan_qdrant.export.ExportSummary` as a dict), or None.
    """

    found: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    pruned: int = 0
    missing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    decoded: int = 0
    seconds: float = 0.0
    export: dict[str, Any] | None = None

    @property
    def images_per_second(self) -> float:
        """Files decoded and embedded per second of the whole run."""
        return self.decoded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (``failed`` as a list of ``{"path", "reason"}``)."""
        d = asdict(self)
        d["failed"] = [{"path": p, "reason": r} for p, r in self.failed]
        d["images_per_second"] = round(self.images_per_second, 2)
        d["seconds"] = round(self.seconds, 3)
        return d


def default_workers() -> int:
    """Decoding workers: one core left for the encoder, at most 8."""
    return max(0, min(8, usable_cores() - 1))


# -- decoding in loader workers -----------------------------------------------------------------


class _PhotoFiles(Dataset):
    """The files to (re)read: each item is hashed, decoded and preprocessed, or an error marker.

    Errors are returned, not raised: one bad file must not kill the DataLoader.
    """

    def __init__(self, files: list[tuple[str, int, int]], transform: Callable, max_pixels: int) -> None:
        self.files = files
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, size, mtime_ns = self.files[i]
        # mtime_ns (an exact integer) is what the unchanged check compares: engines round floats.
        item: dict[str, Any] = {"path": path, "size": size, "mtime": mtime_ns / 1e9, "mtime_ns": mtime_ns}
        try:
            try:
                item["content_hash"] = sha256_file(path)
            except OSError as e:  # gone since the walk, permission denied, I/O error
                raise ImageError(f"{path}: {(e.strerror or str(e)).lower()}") from None
            image = load_image(path, max_pixels=self.max_pixels)
            item["width"], item["height"] = image.size
            item["tensor"] = self.transform(image)
        except ImageError as e:
            msg = str(e)
            item["error"] = msg[len(path) + 2 :] if msg.startswith(path + ": ") else msg
        except DmwanError:  # an Interrupted raised here by a signal handler stops the run
            raise
        except Exception as e:  # noqa: BLE001 - a decoder bug on one file must not stop the run
            item["error"] = f"{type(e).__name__}: {e}"
        return item


def _collate(items: list[dict[str, Any]]) -> tuple[torch.Tensor | None, list[dict[str, Any]]]:
    good = [it.pop("tensor") for it in items if "tensor" in it]
    return (torch.stack(good) if good else None), items


# -- the run ------------------------------------------------------------------------------------


def ingest(
    paths: Sequence[str | Path],
    store: Store,
    collection: str,
    model: Any,
    label_from_folder: bool = False,
    prune: bool = False,
    batch_size: int = 64,
    num_workers: int | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    export: str | Path | None = None,
) -> IngestReport:
    """Embed the image files under ``paths`` into ``collection`` (created on first use).

    Args:
        paths: files and folders (walked recursively).
        store: an open `Store`.
        collection: collection name; created with ``model``'s record if missing.
        model: a DMWAN model (see `dmwan_qdrant.encoder.load_bundle`).
        label_from_folder: store each file's parent folder name as ``label``.
        prune: delete the points under ``paths`` whose file is gone.
        batch_size: images per forward pass and per upsert.
        num_workers: decoding workers (default `default_workers`); 0 decodes in this process.
        progress: called after each batch with an `IngestProgress`; an exception it raises
            stops the run (everything upserted before stays).
        max_pixels: larger images are refused as decompression bombs.
        include: globs; when given, only the files matching one of them are taken.
        exclude: globs; the files matching one are skipped: neither embedded nor pruned. Both
            match the path relative to the PATH a file was found under (`dmwan_qdrant.selection`).
        export: write the points of the files found (new and unchanged) to this ``.npy`` or
            ``.parquet`` file at the end (`dmwan_qdrant.export`).

    Raises:
        UsageError: a path that does not exist, a bad batch size, a bad export file name.
        ModelMismatchError: the collection was filled by another model.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    selection = Selection(include, exclude)
    if export is not None:  # a bad suffix must not show after the whole run
        from .export import export_format, export_points, exported_ids

        export_format(export)
    start = time.perf_counter()
    report = IngestReport()
    for p in paths:  # before creating anything: a typo must not leave an empty collection
        if not os.path.lexists(Path(p).expanduser()):
            raise UsageError(f"{p}: no such file or folder")
    exists = store.collection_exists(collection)
    if exists:
        check_same_model(collection, store.get_model_record(collection), model)

    # What the collection holds, by path. Several ids under one path are possible after a crash
    # between writing a file's new version and deleting its old one. Aliases are the other paths
    # of a content stored once (exact duplicates), so that they are not decoded on every run.
    stored: dict[str, list[tuple[str, Any, Any]]] = {}
    aliases: dict[str, tuple[str, Any, Any]] = {}
    labels: dict[str, Any] = {}
    if exists:
        for pid, payload in store.scroll_payloads(collection, ["path", "size", "mtime_ns", "label", ALIASES]):
            labels[pid] = payload.get("label")
            if isinstance(payload.get("path"), str):
                stored.setdefault(payload["path"], []).append((pid, payload.get("size"), payload.get("mtime_ns")))
            for a in alias_list(payload):
                aliases[a["path"]] = (pid, a.get("size"), a.get("mtime_ns"))
    walked, keep, todo = _plan(paths, selection, stored, aliases, report)
    skipped = report.unchanged + report.duplicates  # files not read again
    if report.found == 0 and not (exists and prune):
        where = ", ".join(str(p) for p in paths)
        kinds = " ".join(sorted(IMAGE_SUFFIXES))
        outcome = "nothing was stored" if exists else f"collection '{collection}' was not created"
        matching = f" matching {selection.describe()}" if selection else ""
        raise UsageError(f"no image files under {where}{matching} (the suffixes read: {kinds}): {outcome}")
    if not exists:
        rec = model_record(model)
        store.create_collection(collection, CollectionSpec(rec["dim"], rec["token_dim"], rec))

    def tick() -> None:
        if progress is not None:
            done = skipped + report.decoded + len(report.failed)
            progress(IngestProgress(done, report.found, report.decoded, len(report.failed), time.perf_counter() - start))

    tick()
    written: set[str] = set()  # ids written, or confirmed as another file's duplicate, this run
    try:
        if todo:
            workers = default_workers() if num_workers is None else max(0, num_workers)
            workers = min(workers, (len(todo) - 1) // batch_size)  # one batch: no worker start-up cost
            worker_init = None
            if workers:  # workers die with this process and leave Ctrl-C to it
                from .interrupts import loader_worker_init as worker_init
            loader = DataLoader(
                _PhotoFiles(todo, model.transform("photo"), max_pixels),
                batch_size=batch_size,
                num_workers=workers,
                collate_fn=_collate,
                pin_memory=getattr(getattr(model, "device", None), "type", "cpu") == "cuda",
                prefetch_factor=4 if workers else None,
                worker_init_fn=worker_init,
            )
            with encoder_threads(model, leave=workers):
                for tensors, items in loader:
                    _ingest_batch(store, collection, model, tensors, items, label_from_folder, report, written)
                    tick()

        if label_from_folder:  # a labelling that changed needs no new embedding: payload only
            for path, entries in stored.items():
                for pid, _, _ in entries:
                    if pid in keep and labels.get(pid) != Path(path).parent.name:
                        store.update_payload(collection, pid, {"label": Path(path).parent.name})
                        report.updated += 1
                        report.unchanged -= 1
        # Stale points: older versions of walked files, and (prune) files gone from under the roots.
        # Points that the globs exclude are out of this run's reach.
        roots = [Path(p).expanduser().resolve() for p in paths]
        if not prune:
            report.missing = sum(len(e) for p, e in stored.items() if p not in walked and selection.covers(p, roots))
        stale = [
            pid
            for path, entries in stored.items()
            for pid, _, _ in entries
            if pid not in keep and pid not in written and (path in walked or (prune and selection.covers(path, roots)))
        ]
        for i in range(0, len(stale), _DELETE_BATCH):
            store.delete_points(collection, stale[i : i + _DELETE_BATCH])
        report.pruned = len(stale)
        store.flush()
        record_ingest(store, collection, roots, label_from_folder, include, exclude)
        if export is not None:
            report.export = export_points(store, collection, [i for i, _ in exported_ids(store, collection, walked)],
                                          export).to_dict()
    except (Interrupted, DiskFullError) as e:
        done = skipped + report.decoded + len(report.failed)
        raise type(e)(stopped_message(e, store, collection, done, report.found), *signum_args(e)) from None
    except RuntimeError as e:
        if "DataLoader worker" not in str(e):
            raise
        # A decoding worker killed from outside (the OOM killer, a stray SIGTERM): the run stops
        # like an interrupted one, with what it stored.
        done = skipped + report.decoded + len(report.failed)
        why = DmwanError(f"a decoding worker died ({str(e).splitlines()[0].rstrip('. ')})")
        raise DmwanError(stopped_message(why, store, collection, done, report.found)) from None
    report.seconds = time.perf_counter() - start
    return report


def _plan(
    paths: Sequence[str | Path],
    selection: Selection,
    stored: dict[str, list[tuple[str, Any, Any]]],
    aliases: dict[str, tuple[str, Any, Any]],
    report: IngestReport,
) -> tuple[set[str], set[str], list[tuple[str, int, int]]]:
    """Walk and stat: the paths walked, the ids of unchanged files, the files to read."""
    walked: set[str] = set()
    keep: set[str] = set()
    todo: list[tuple[str, int, int]] = []
    known_duplicates: list[tuple[str, str, int, int]] = []
    for f in walk_images(paths, selection):
        path = str(f)
        walked.add(path)
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
        match = [pid for pid, size, mtime in stored.get(path, ()) if size == st.st_size and mtime == st.st_mtime_ns]
        alias = aliases.get(path)
        if match:
            report.unchanged += 1
            keep.add(match[0])
        elif alias is not None and (alias[1], alias[2]) == (st.st_size, st.st_mtime_ns):
            known_duplicates.append((alias[0], path, st.st_size, st.st_mtime_ns))
        else:
            todo.append((path, st.st_size, st.st_mtime_ns))
    # A known duplicate is skipped only while the file it duplicates is unchanged too; else it is
    # read again, and may become the content's main path.
    for pid, path, size, mtime_ns in known_duplicates:
        if pid in keep:
            report.duplicates += 1
        else:
            todo.append((path, size, mtime_ns))
    todo.sort()
    return walked, keep, todo


def _ingest_batch(
    store: Store,
    collection: str,
    model: Any,
    tensors: torch.Tensor | None,
    items: list[dict[str, Any]],
    label_from_folder: bool,
    report: IngestReport,
    written: set[str],
) -> None:
    """Classify one decoded batch against the collection, embed what must be written, upsert."""
    good = [it for it in items if "error" not in it]
    for it in items:
        if "error" in it:
            report.failed.append((it["path"], it["error"]))
        elif "content_hash" in it:
            it["id"] = point_id(it["content_hash"])
    report.decoded += len(good)
    if not good:
        return
    ids = list(dict.fromkeys(it["id"] for it in good))
    in_store = {point_id(p["content_hash"]): p for p in store.retrieve(collection, ids) if "content_hash" in p}

    rows: list[int] = []  # rows of `tensors` to embed and write
    new_aliases: dict[str, list[dict[str, Any]]] = {}
    for row, it in enumerate(good):
        pid = it["id"]
        prev = in_store.get(pid)
        alias = {"path": it["path"], "size": it["size"], "mtime_ns": it["mtime_ns"]}
        if pid in written:  # same content met earlier in this run
            report.duplicates += 1
            new_aliases.setdefault(pid, []).append(alias)
        elif prev is not None and prev.get("path") != it["path"] and _still_there(prev):
            report.duplicates += 1  # the stored file still exists unchanged: keep it as it is
            written.add(pid)
            new_aliases.setdefault(pid, []).append(alias)
        else:
            # New content; or a rename/move (the stored path is gone or holds other bytes now);
            # or a touched file (same bytes, new mtime). All are (re)written with this path.
            if prev is None:
                report.added += 1
            else:
                report.updated += 1
            rows.append(row)
            written.add(pid)
    if rows:
        assert tensors is not None
        _write_rows(store, collection, model, tensors, good, rows, in_store, label_from_folder)
    for pid, added in new_aliases.items():
        add_aliases(store, collection, pid, added)


def _write_rows(
    store: Store,
    collection: str,
    model: Any,
    tensors: torch.Tensor,
    good: list[dict[str, Any]],
    rows: list[int],
    in_store: dict[str, dict[str, Any]],
    label_from_folder: bool,
) -> None:
    """Embed the given rows of a decoded batch and upsert them as points."""
    batch = tensors if len(rows) == len(good) else tensors[rows]
    emb = model.embed_photos(batch)
    vectors, tokens = emb.global_.cpu().numpy(), emb.tokens.cpu().numpy()
    points = []
    for j, row in enumerate(rows):
        it = good[row]
        payload = {k: it[k] for k in ("path", "content_hash", "size", "mtime", "mtime_ns", "width", "height")}
        if label_from_folder:
            payload["label"] = Path(it["path"]).parent.name
        known = [a for a in alias_list(in_store.get(it["id"], {})) if a["path"] != it["path"]]
        if known:  # a rewritten point keeps the duplicates known of its content
            payload[ALIASES] = known
        points.append(PhotoPoint(it["id"], vectors[j], tokens[j], payload))
    store.upsert(collection, points)


def _still_there(payload: dict[str, Any]) -> bool:
    """Whether the file a stored point names still exists with the stored size and mtime."""
    try:
        st = os.stat(payload["path"])
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return st.st_size == payload.get("size") and st.st_mtime_ns == payload.get("mtime_ns")
