"""An ingest through the server that runs beside its searches, not in front of them.

The server's store answers on one worker thread (the engine's handle is not shared between
threads). An ingest used to run whole on that thread, so every search waited for all of it. Now
its reading, decoding and embedding run on a thread of their own at a lower CPU priority (and
its decoding workers, forked from it, inherit that), with a private copy of an ONNX encoder
whose single intra-op thread is that thread; only its store calls go to the store's worker, one
call at a time (a batch's upsert, a page of a scroll), so a search waits for at most one of
those. A search's forward pass, at normal priority on the server's own encoder, takes the
cores first.

`IngestJob` also carries the stop: the route sets it when the client goes away (Ctrl-C on
`dmwan ingest`), and the ingest stops at the next batch boundary with what it stored, as a
local one does.
"""

from __future__ import annotations

import concurrent.futures
import copy
import itertools
import os
import signal
import threading
import weakref
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from dmwan_qdrant.errors import Interrupted
from dmwan_qdrant.ingest.report import IngestProgress

#: Nice value of the ingest thread and its decoding workers (searches run at the server's own).
INGEST_NICENESS = 10
#: Items of a scroll the ingest reads per call on the store's worker.
PAGE = 1024
#: The ingest's copy of each served ONNX encoder (gone with the encoder, after a model swap).
_INGEST_COPIES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class StoreOnWorker:
    """The served store as the ingest thread sees it: each method call runs on the store's
    worker thread (``executor``) and waits for it; a generator a method returns is read there
    in pages of `PAGE`. Plain attributes are the store's."""

    def __init__(self, store: Any, executor: concurrent.futures.Executor) -> None:
        self._store = store
        self._executor = executor

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value):
            return value

        def on_worker(*args: Any, **kwargs: Any) -> Any:
            result = self._executor.submit(value, *args, **kwargs).result()
            return self._paged(result) if isinstance(result, types.GeneratorType) else result

        return on_worker

    def _paged(self, gen: Iterator[Any]) -> Iterator[Any]:
        while True:
            page = self._executor.submit(lambda: list(itertools.islice(gen, PAGE))).result()
            yield from page
            if len(page) < PAGE:
                return


def lower_priority() -> None:
    """Lower the calling thread's CPU priority to `INGEST_NICENESS` (Linux: niceness is per
    thread; elsewhere a no-op)."""
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(current, INGEST_NICENESS))
    except (AttributeError, OSError):
        pass


def ingest_encoder(model: Any) -> Any:
    """The encoder an ingest embeds with: for an ONNX model a copy whose sessions open on the
    ingest thread with one intra-op thread (so its work runs at that thread's priority, beside
    the searches' own sessions); a torch model is shared."""
    if getattr(model, "runtime", None) != "onnx":
        return model
    mine = _INGEST_COPIES.get(model)
    if mine is None:  # one per served encoder: its session opens once, on the ingest thread
        mine = copy.copy(model)  # `OnnxEncoder.__getstate__`: the copy opens its own sessions
        mine.threads = 1
        _INGEST_COPIES[model] = mine
    return mine


class IngestJob:
    """One ingest run through the server: where it stands and how to stop it.

    Args:
        on_progress: called (on the ingest thread) with each progress as a JSON-able dict.
    """

    def __init__(self, on_progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.stop = threading.Event()
        self.on_progress = on_progress

    def progress(self, p: IngestProgress) -> None:
        """The ingest's progress callback: reports, then stops the run at this batch boundary
        once `stop` is set (an `Interrupted`, which the ingest turns into its stop line)."""
        if self.on_progress is not None:
            self.on_progress({**asdict(p), "images_per_second": round(p.images_per_second, 2)})
        if self.stop.is_set():
            raise Interrupted("stopped by the client", signal.SIGINT)
