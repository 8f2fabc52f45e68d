"""Decoding in a process pool, for the ONNX runtime: a DataLoader's overlap without torch.

`pool_batches` yields `collate`d batches in file order while up to two batches per worker decode
ahead, so memory stays bounded however many files a run has. The workers behave as the
DataLoader's (`dmwan_qdrant.interrupts.loader_worker_init`): they ignore Ctrl-C, leave at once on
SIGTERM and die with the parent; a worker killed from outside breaks the pool, which the ingest
reports as a dead decoding worker.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from .decode import PhotoFiles, collate, decode_photo

AHEAD = 2
"""Batches each worker may decode ahead of the encoder."""
WORKER_NICENESS = 5
"""How much lower the decoding workers' CPU priority is than the encoder's."""


def _decode_batch(entries: list[Any], transform: Any, max_pixels: int) -> list[dict[str, Any]]:
    return [decode_photo(entry, transform, max_pixels) for entry in entries]


def _worker_init() -> None:
    """A decoding worker: the DataLoader's signal behaviour, at a lower CPU priority than the
    encoder, which runs on every core (`dmwan_qdrant.encoder.encoder_threads`) and yields them."""
    from ..interrupts import loader_worker_init

    loader_worker_init(0)
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass


def pool_batches(files: PhotoFiles, batch_size: int, workers: int) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """``(images, items)`` batches of ``files``, in order, decoded by ``workers`` processes (0:
    in this one)."""
    bounds = [(i, min(i + batch_size, len(files))) for i in range(0, len(files), batch_size)]
    if not workers:
        for start, stop in bounds:
            yield collate(_decode_batch(files.files[start:stop], files.transform, files.max_pixels))
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_init)
    pending: collections.deque[Future] = collections.deque()
    todo = iter(bounds)

    def submit(start: int, stop: int) -> Future:  # only the batch's own entries cross to the worker
        return pool.submit(_decode_batch, files.files[start:stop], files.transform, files.max_pixels)

    try:
        for start, stop in todo:
            pending.append(submit(start, stop))
            if len(pending) >= workers * AHEAD:
                break
        while pending:
            items = pending.popleft().result()
            for start, stop in todo:
                pending.append(submit(start, stop))
                break
            yield collate(items)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
