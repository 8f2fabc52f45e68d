"""The single-process ingest: decoding in DataLoader workers overlapped with the encoder."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..encoder import encoder_threads, usable_cores
from ..errors import UsageError
from ..imageio import MAX_IMAGE_PIXELS
from ..runtime import as_array
from .selection import Selection
from ..store import Store
from .decode import FileEntry, PhotoFiles, collate
from .plan import IngestPlan, create_if_missing, finish_ingest, plan_ingest
from . import records
from .records import stopped_message
from .report import IngestProgress, IngestReport
from .write import BatchWriter, Embed


def default_workers() -> int:
    """Decoding workers: one core left for the encoder, at most 8."""
    return max(0, min(8, usable_cores() - 1))


def check_export(export: str | Path | None) -> None:
    """Refuse a bad export file name before the run (not after it)."""
    if export is not None:
        from .export import export_format

        export_format(export)


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
        model: an encoder of either runtime (see `dmwan_qdrant.encoder.load_bundle`).
        label_from_folder: store each file's parent folder name as ``label``.
        prune: delete the points under ``paths`` whose file is gone.
        batch_size: images per forward pass and per upsert.
        num_workers: decoding workers (default `default_workers`); 0 decodes in this process.
        progress: called after each batch with an `IngestProgress`; an exception it raises
            stops the run (everything upserted before stays).
        max_pixels: larger images are refused as decompression bombs.
        include: globs; when given, only the files matching one of them are taken.
        exclude: globs; the files matching one are skipped: neither embedded nor pruned. Both
            match the path relative to the PATH a file was found under (`dmwan_qdrant.ingest.selection`).
        export: write the points of the files found (new and unchanged) to this ``.npy`` or
            ``.parquet`` file at the end (`dmwan_qdrant.ingest.export`).

    Raises:
        UsageError: a path that does not exist, a bad batch size, a bad export file name.
        ModelMismatchError: the collection was filled by another model.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")

    def embed_and_write(plan: IngestPlan, writer: BatchWriter, tick: Callable[[], None]) -> None:
        _decode_and_write(plan, model, writer, batch_size, num_workers, max_pixels, tick)

    return run_ingest(paths, store, collection, model, embed_and_write, label_from_folder=label_from_folder,
                      prune=prune, progress=progress, include=include, exclude=exclude, export=export)


EmbedAndWrite = Callable[[IngestPlan, BatchWriter, Callable[[], None]], None]
"""The middle of an ingest: read, decode and embed ``plan.todo`` and hand every batch to the
writer, calling ``tick()`` after each (the single process's DataLoader, or the Ray pipeline)."""


def run_ingest(
    paths: Sequence[str | Path],
    store: Store,
    collection: str,
    model: Any,
    embed_and_write: EmbedAndWrite,
    label_from_folder: bool = False,
    prune: bool = False,
    progress: Callable[[IngestProgress], None] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    export: str | Path | None = None,
) -> IngestReport:
    """An ingest around its middle step: the plan (walk, the unchanged check), the collection
    created if missing, the writer, one-line stop messages, and the end of the run (stale
    versions, prune, the ingest record, export). Both ingest paths are this with their own
    ``embed_and_write``; the arguments are `ingest`'s."""
    selection = Selection(include, exclude)
    check_export(export)
    start = time.perf_counter()
    report = IngestReport()
    plan = plan_ingest(paths, store, collection, model, selection, prune, report)
    create_if_missing(store, collection, plan, model)
    writer = BatchWriter(store, collection, label_from_folder, report)

    def tick() -> None:
        if progress is not None:
            progress(IngestProgress(report.handled(plan.skipped), report.found, report.decoded,
                                    len(report.failed), time.perf_counter() - start))

    tick()
    with stop_messages(store, collection, plan, report):
        if plan.todo:
            embed_and_write(plan, writer, tick)
        finish_ingest(paths, store, collection, plan, writer.written, report, selection=selection,
                      label_from_folder=label_from_folder, prune=prune, export=export)
    report.seconds = time.perf_counter() - start
    return report


def _decode_and_write(plan: IngestPlan, model: Any, writer: BatchWriter, batch_size: int,
                      num_workers: int | None, max_pixels: int, tick: Callable[[], None]) -> None:
    for items, embed in decoded_batches(plan.todo, model, batch_size, num_workers, max_pixels):
        writer.write(items, embed)
        tick()


def decoded_batches(
    files: list[FileEntry], model: Any, batch_size: int, num_workers: int | None, max_pixels: int = MAX_IMAGE_PIXELS
) -> Iterator[tuple[list[dict[str, Any]], Embed]]:
    """``files`` read and decoded in batches, in order, while the encoder works: each batch's
    items (`decode_photo` dicts, without their images; errors included) and the function that
    embeds chosen rows of its good items (`dmwan_qdrant.ingest.write.Embed`).

    ``num_workers``: decoding workers (None: `default_workers`; 0: in this process).
    """
    workers = default_workers() if num_workers is None else max(0, num_workers)
    workers = max(0, min(workers, (len(files) - 1) // batch_size))  # one batch: no worker start-up cost
    photos = PhotoFiles(files, model.transform("photo"), max_pixels)
    with encoder_threads(model, leave=workers):
        for tensors, items in _batches(photos, model, batch_size, workers):
            yield items, _embedder(model, tensors, sum("error" not in it for it in items))


def _batches(files: PhotoFiles, model: Any, batch_size: int, workers: int) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Decoded batches: a DataLoader's for a torch model, a process pool's for an ONNX one (no
    torch imported)."""
    if model.runtime == "onnx":
        from .pool import pool_batches

        yield from pool_batches(files, batch_size, workers)
        return
    from torch.utils.data import DataLoader

    worker_init = None
    if workers:  # workers die with this process and leave Ctrl-C to it
        from ..interrupts import loader_worker_init as worker_init
    yield from DataLoader(
        files,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=getattr(getattr(model, "device", None), "type", "cpu") == "cuda",
        prefetch_factor=4 if workers else None,
        worker_init_fn=worker_init,
    )


def _embedder(model: Any, tensors: Any, good: int) -> Callable[[list[int]], tuple[np.ndarray, np.ndarray]]:
    """Embeds chosen rows of a batch's stacked images (all of them without a copy)."""

    def embed(rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        assert tensors is not None
        emb = model.embed_photos(tensors if len(rows) == good else tensors[rows])
        return as_array(emb.global_), as_array(emb.tokens)

    return embed


def stop_messages(store: Store, collection: str, plan: IngestPlan, report: IngestReport) -> Any:
    """Turn a run stopped by a signal, a full disk or a dead decoding worker into one line that
    says what is stored and what to do next (`dmwan_qdrant.ingest.records.stop_messages`, with
    `stopped_message`)."""
    def hint() -> str:  # the watchdog's, should the clean stop below outlast its deadline
        return (f"{report.handled(plan.skipped)} of {report.found} files handled, the points written before are "
                f"kept in '{collection}'; run the same command again to finish")

    return records.stop_messages(
        lambda why: stopped_message(why, store, collection, report.handled(plan.skipped), report.found), hint)
