"""Ingest on Ray Data: decoding in CPU tasks, embedding in an actor pool, one writer.

The plan (walk, the unchanged check) and the end of the run (stale versions, prune, the ingest
record, export) are the single-process ingest's, run on the driver; so are the decoder
(`decode_photo`, here in Ray tasks) and the writer (`BatchWriter`). Only the middle differs:

    files to read -> map_batches(decode, CPU tasks) -> map_batches(PhotoEncoder, actor pool) -> writer

The writer is where the guarantees live, so there is exactly one at a time:

- an embedded store, which one process may open, is written by the driver as the embedded
  batches stream back to it;
- a Qdrant server is written by `QdrantDatasink` in Ray write tasks, one at a time, each
  classifying its batches against what the server already holds.

Every file a worker reads must be reachable under the same path on the worker's machine (a
shared or network filesystem on a real cluster); the model travels through Ray's object store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.data import Datasink

from ..errors import DmwanError, UsageError
from ..imageio import MAX_IMAGE_PIXELS
from ..ray_runtime import init_ray
from ..store import Store
from ..runtime import as_array
from .decode import FileEntry, decode_photo
from .plan import IngestPlan
from .report import IngestProgress, IngestReport
from .run import run_ingest
from .write import BatchWriter, Embed

_TEXT_COLUMNS = ("path", "content_hash", "error")
_INT_COLUMNS = ("size", "mtime_ns", "width", "height")


def ingest_ray(
    paths: Sequence[str | Path],
    store: Store,
    collection: str,
    model: Any,
    label_from_folder: bool = False,
    prune: bool = False,
    batch_size: int = 64,
    encoders: int = 1,
    gpus_per_encoder: float = 0.0,
    address: str | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    export: str | Path | None = None,
) -> IngestReport:
    """`dmwan_qdrant.ingest.ingest` as a Ray Data pipeline on a local or remote Ray cluster.

    Same arguments, guarantees and report as `ingest`, plus:

    Args:
        encoders: encoder actors in the pool (each holds a copy of the model).
        gpus_per_encoder: GPUs each encoder actor asks for (0: CPU encoders).
        address: the Ray cluster to use (default ``$RAY_ADDRESS``, else a local instance
            started for this run and stopped after it). Ignored when Ray is already initialised.

    With a server store the points are written by Ray write tasks (`QdrantDatasink`) and
    ``progress`` is called once at the start only; with an embedded store the driver writes
    and ``progress`` follows every batch.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if encoders < 1:
        raise UsageError(f"encoders must be at least 1, got {encoders}")
    if gpus_per_encoder < 0:
        raise UsageError(f"GPUs per encoder must not be negative, got {gpus_per_encoder}")

    def embed_and_write(plan: IngestPlan, writer: BatchWriter, tick: Callable[[], None]) -> None:
        with _ray_errors():
            started = init_ray(address)
            try:
                cpus = int(ray.cluster_resources().get("CPU", 0))
                check_room(encoders, cpus)
                ds = _embedded_photos(plan.todo, model, batch_size, encoders, gpus_per_encoder, max_pixels, cpus)
                if store.backend == "server":
                    sink = QdrantDatasink(store, collection, label_from_folder, batch_size)
                    ds.write_datasink(sink, concurrency=1)
                    sink.merge_into(writer)
                else:
                    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=2):
                        writer.write(*batch_items(batch))
                        tick()
            finally:
                if started:
                    ray.shutdown()

    return run_ingest(paths, store, collection, model, embed_and_write, label_from_folder=label_from_folder,
                      prune=prune, progress=progress, include=include, exclude=exclude, export=export)


def _embedded_photos(todo: list[FileEntry], model: Any, batch_size: int, encoders: int, gpus: float,
                     max_pixels: int, cpus: int) -> Any:
    """The dataset of decoded, embedded files, in the plan's order."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    _quiet_console()
    ctx.execution_options.preserve_order = True  # the first of two identical files stays the main path
    size = int(model.config.image_size)
    rows = [{"path": p, "size": s, "mtime_ns": m} for p, s, m in todo]
    ds = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // rows_per_block(len(rows), batch_size, cpus)))
    ds = ds.map_batches(
        decode_batch,
        batch_size=batch_size,
        batch_format="numpy",
        fn_kwargs={"transform": model.transform("photo"), "max_pixels": max_pixels, "image_size": size},
        num_cpus=1,
        # The worker and the largest image allowed, decoded (`decode_memory`). Also keeps the
        # decoding in tasks of its own, in parallel: Ray Data fuses a step into the next one's
        # actors when their resources agree. A task lost with its worker is run again.
        memory=decode_memory(max_pixels),
    )
    return ds.map_batches(
        PhotoEncoder,
        batch_size=batch_size,
        batch_format="numpy",
        fn_constructor_kwargs={"model": _on_cpu(model), "use_gpu": gpus > 0},
        compute=ray.data.ActorPoolStrategy(size=encoders),  # Ray 2.60 deprecates `concurrency` for it
        num_gpus=gpus,
        num_cpus=1,
    )


class _ConsoleFilter(logging.Filter):
    """Ray Data's terminal output during an ingest: errors only (its plan, progress and tuning
    notices say nothing the ingest's own report does not), and no stack trace of an exception
    that reaches the caller anyway, as one line. Its log file in the Ray session keeps all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR and not record.name.startswith("ray.data.exceptions")


def _quiet_console() -> None:
    for handler in logging.getLogger("ray.data").handlers:
        if getattr(handler, "stream", None) is not None and not any(
                isinstance(f, _ConsoleFilter) for f in handler.filters):
            handler.addFilter(_ConsoleFilter())


def check_room(encoders: int, cpus: int) -> None:
    """Refuse a pool of encoders that would hold every one of the cluster's ``cpus`` (one each):
    no decoding task could then start, and the pipeline would wait forever."""
    if encoders >= cpus:
        raise UsageError(f"{encoders} encoder{'s' if encoders != 1 else ''} would take all {cpus} CPUs of the Ray "
                         f"cluster (one each), leaving none to decode with: use --encoders {max(1, cpus - 1)} "
                         "or fewer, or a larger cluster")


def rows_per_block(files: int, batch_size: int, cpus: int, max_rows: int = 1024) -> int:
    """Files per decoding task: two tasks per CPU of the cluster (``cpus``) where the files allow, at most
    ``max_rows`` and at least a batch. A task has a fixed cost (about 40 ms on two cores), so
    on a small machine fewer, larger tasks are faster (tiny model, 8,000 photos on 2 cores:
    495 images/s with 64 files a task, 681 with 1,024); on a cluster each CPU still gets work."""
    return max(batch_size, min(max_rows, files // (2 * max(1, cpus))))


def decode_memory(max_pixels: int) -> int:
    """Bytes a decoding task reserves: a decoded image of ``max_pixels`` in RGBA, plus 512 MiB
    for the worker itself (with torch imported it holds about 400 MiB)."""
    return 4 * max_pixels + (512 << 20)


def _on_cpu(model: Any) -> Any:
    """The model to ship to the encoders: on CPU, so that it unpickles on any machine."""
    import copy

    if getattr(getattr(model, "device", None), "type", "cpu") == "cpu":
        return model
    return copy.deepcopy(model).to("cpu")


def decode_batch(batch: dict[str, np.ndarray], transform: Callable, max_pixels: int, image_size: int) -> dict[str, np.ndarray]:
    """A Ray Data batch of files, hashed, decoded and preprocessed (`decode_photo`); a bad file
    keeps its row with an ``error`` and a blank image."""
    items = [decode_photo((str(p), int(s), int(m)), transform, max_pixels)
             for p, s, m in zip(batch["path"], batch["size"], batch["mtime_ns"])]
    blank = np.zeros((3, image_size, image_size), np.float32)
    out: dict[str, np.ndarray] = {k: np.array([str(it.get(k, "")) for it in items], dtype=object) for k in _TEXT_COLUMNS}
    out.update({k: np.array([int(it.get(k, 0)) for it in items], dtype=np.int64) for k in _INT_COLUMNS})
    out["image"] = np.stack([as_array(it["tensor"]) if "tensor" in it else blank for it in items])
    return out


class PhotoEncoder:
    """An actor of the encoder pool: embeds the good rows of a decoded batch.

    The ``image`` column is replaced by ``vector`` (global embeddings) and ``tokens``; rows with
    an error get zeros, which no writer stores.
    """

    def __init__(self, model: Any, use_gpu: bool = False) -> None:
        if model.runtime == "onnx":
            self.model = model.to(None if use_gpu else "cpu")  # None: CUDA when onnxruntime has it
        else:
            import torch

            device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
            self.model = model.to(device).eval()
        self.dim = int(model.config.embed_dim)
        self.tokens_shape = (int(model.config.num_tokens), int(model.config.token_dim))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        good = np.array([not e for e in batch["error"]], dtype=bool)
        n = len(good)
        vectors = np.zeros((n, self.dim), np.float32)
        tokens = np.zeros((n, *self.tokens_shape), np.float32)
        if good.any():
            emb = self.model.embed_photos(np.ascontiguousarray(batch["image"][good]))
            vectors[good] = as_array(emb.global_)
            tokens[good] = as_array(emb.tokens)
        out = {k: v for k, v in batch.items() if k != "image"}
        out.update(vector=vectors, tokens=tokens)
        return out


def batch_items(batch: dict[str, np.ndarray]) -> tuple[list[dict[str, Any]], Embed]:
    """An embedded batch as the writer takes it: `decode_photo`-style items, and an embed
    function that hands over the rows' precomputed embeddings."""
    items: list[dict[str, Any]] = []
    good_rows: list[int] = []
    for i in range(len(batch["path"])):
        it: dict[str, Any] = {"path": str(batch["path"][i]), "size": int(batch["size"][i]),
                              "mtime_ns": int(batch["mtime_ns"][i])}
        it["mtime"] = it["mtime_ns"] / 1e9
        if batch["error"][i]:
            it["error"] = str(batch["error"][i])
        else:
            it.update(content_hash=str(batch["content_hash"][i]), width=int(batch["width"][i]),
                      height=int(batch["height"][i]))
            good_rows.append(i)
        items.append(it)
    vectors, tokens = batch["vector"], batch["tokens"]

    def embed(rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        idx = [good_rows[r] for r in rows]
        return vectors[idx], tokens[idx]

    return items, embed


@contextlib.contextmanager
def _ray_errors() -> Iterator[None]:
    """A failed Ray pipeline (a task that kept failing, a lost cluster) as one line."""
    try:
        yield
    except ray.exceptions.RayError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1].strip()
        raise DmwanError(f"the Ray ingest pipeline failed: {first}") from None


class QdrantDatasink(Datasink):
    """Writes embedded batches into a collection of a Qdrant server with qdrant-client.

    Each write task opens its own client, classifies its batches against the server with a
    `BatchWriter` and returns its counts; `merge_into` adds them to the driver's report. Run it
    with ``concurrency=1``: the duplicate and rename checks read what earlier batches wrote.
    """

    def __init__(self, store: Store, collection: str, label_from_folder: bool, batch_size: int) -> None:
        self.url = store.url  # type: ignore[attr-defined]
        self.api_key = getattr(store, "api_key", None)
        self.collection = collection
        self.label_from_folder = label_from_folder
        self.batch_size = batch_size
        self.results: list[dict[str, Any]] = []

    @property
    def min_rows_per_write(self) -> int:
        return self.batch_size

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        from ray.data.block import BlockAccessor

        from ..store.server import ServerStore

        report = IngestReport()
        store = ServerStore(self.url, api_key=self.api_key)
        try:
            writer = BatchWriter(store, self.collection, self.label_from_folder, report)
            for block in blocks:
                writer.write(*batch_items(BlockAccessor.for_block(block).to_numpy()))
        finally:
            store.close()
        return {"report": report, "written": sorted(writer.written)}

    def on_write_complete(self, write_result: Any) -> None:
        self.results = list(write_result.write_returns)

    def merge_into(self, writer: BatchWriter) -> None:
        """Add the write tasks' counts and written ids to the driver's writer and report."""
        report = writer.report
        for r in self.results:
            part: IngestReport = r["report"]
            report.added += part.added
            report.updated += part.updated
            report.duplicates += part.duplicates
            report.decoded += part.decoded
            report.failed.extend(part.failed)
            writer.written.update(r["written"])
