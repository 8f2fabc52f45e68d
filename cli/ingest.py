"""`dmwan ingest`: embed photo folders into a collection (incremental; bad files reported)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant import interrupts
from dmwan_qdrant.errors import DmwanError, StoreServedError, UsageError
from dmwan_qdrant.model.shipped import SHIPPED_MODEL
from dmwan_qdrant.settings import ENV_DMWAN_API_KEY

from .options import (MODEL_REFS, api_key_option, device_option, open_cli_store, runtime_option, store_option,
                      url_option, warn_if_toy)
from .root import app
from .startup import STARTUP_HINTS

EXIT_SOME_FAILED = 11
"""Exit code when the run finished but some files could not be read (the good ones are stored)."""

_MAX_LISTED_FAILURES = 20


@app.command("ingest")
def ingest_command(
    paths: list[Path] = typer.Argument(..., metavar="PATH", help="photo files or folders (walked recursively)"),
    collection: str = typer.Option(..., "--collection", "-c", help="collection to fill (created if missing)"),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", metavar="BUNDLE|NAME",
        help=f"model bundle: {MODEL_REFS}; a new collection takes {SHIPPED_MODEL} by default, an existing one "
             "its recorded model"
    ),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    label_from_folder: bool = typer.Option(False, "--label-from-folder", help="store each file's folder name as its label"),
    prune: bool = typer.Option(
        False, "--prune", help="delete points under PATHS whose file is gone (points --include/--exclude leave out are kept)"
    ),
    include: Optional[list[str]] = typer.Option(
        None, "--include", metavar="GLOB",
        help="take only files matching GLOB (repeatable; see below for the syntax)",
    ),
    exclude: Optional[list[str]] = typer.Option(
        None, "--exclude", metavar="GLOB",
        help="skip files matching GLOB (repeatable): neither embedded nor pruned, their points stay as they are",
    ),
    export: Optional[Path] = typer.Option(
        None, "--export", metavar="FILE",
        help="write ids, paths, labels and vectors of the points of the files found (new and unchanged) to FILE: "
        ".npy (float32 matrix + FILE.ids.json) or .parquet (id, path, label, vector, tokens; needs pyarrow)",
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="images per forward pass and per upsert"),
    workers: Optional[int] = typer.Option(
        None, "--decode-workers", "--workers", min=0, help="image decoding processes (default: cores - 1, at most 8)"
    ),
    ray: bool = typer.Option(
        False, "--ray", help="run as a Ray Data pipeline: decoding in Ray tasks, embedding in a pool of encoder actors"
    ),
    address: Optional[str] = typer.Option(
        None, "--address", metavar="ADDR",
        help="with --ray: the Ray cluster to run on (default $RAY_ADDRESS, else a local instance for this run)",
    ),
    encoders: int = typer.Option(1, "--encoders", min=1, help="with --ray: encoder actors, each with a copy of the model"),
    gpus_per_encoder: float = typer.Option(
        0.0, "--gpus-per-encoder", min=0.0, help="with --ray: GPUs each encoder actor asks for (0: encode on CPU)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON on stdout"),
    device: Optional[str] = device_option(),
    runtime: str = runtime_option(),
) -> None:
    """Embed the photos under PATHS into a collection.

    A new collection is filled by --model, or by default by dmwan-sketch, the sketch model
    that ships with the package (`dmwan model info dmwan-sketch`); an existing one keeps the
    model it records.

    Unchanged files (same path, size and mtime) are skipped; a duplicate or
    renamed file adds no point. Exit code 0 when every file was stored, 11 when
    some could not be read.

    --include/--exclude GLOB (each repeatable) match the path of a file relative
    to the PATH it was found under (a file given as PATH: its name), with /
    separators, case-sensitively. * and ? stop at /, [...] is a character class
    ([!...] its complement), ** crosses folders (**/tmp/**). A GLOB with a / in it is anchored
    at PATH (thumbs/*), one without matches names at any depth (*.jpg, tmp); a
    GLOB matching a folder matches all under it. A file is taken when it
    matches some --include (or none is given) and no --exclude. Excluded files
    are not counted as found, and --prune keeps their points.

    --export FILE is written at the end, atomically (a temporary file renamed
    over FILE), one row per point of the files found, sorted by path:
    .npy: the global vectors as a (rows, dim) float32 matrix, and FILE.ids.json
    with {"collection", "rows", "dim", "ids", "paths", "labels"} in row order;
    .parquet: columns id, path, label, vector (list<float32>) and tokens
    (list<list<float32>>, one list per local token).

    --ray runs the same ingest on a Ray cluster (local, or --address / $RAY_ADDRESS;
    under `ray job submit` the job's cluster): every worker must see the files under
    the same paths. With a Qdrant server (--url) Ray tasks write the points; an
    embedded store is written by this process. Same report and exit codes.
    """
    if not ray and (address is not None or encoders != 1 or gpus_per_encoder):
        raise UsageError("--address, --encoders and --gpus-per-encoder need --ray")
    if ray and workers is not None:
        raise UsageError("--decode-workers does not apply with --ray: decoding runs in Ray tasks")
    if export is not None:  # before the store and the model: a typo must fail at once
        from dmwan_qdrant.ingest.export import export_format

        export_format(export)
    for p in paths:  # before the store's lock (or a server's): a wrong path is the first thing to say
        if not Path(p).expanduser().exists():
            raise UsageError(f"{p}: no such file or folder")
    # The store first (numpy and qdrant-edge only): "store in use" must not wait for torch.
    try:
        opened = open_cli_store(store, url, api_key, create=True)
    except StoreServedError as served:
        if ray or export is not None or model is not None or workers is not None:
            raise UsageError(f"the store is held by `dmwan serve` (pid {served.pid}) at {served.url}, which ingests "
                             "with its collection's own model and its own settings: leave out --model, --ray, "
                             "--export and --decode-workers, or stop the server") from None
        with ProgressDisplay() as bar, interrupts.stop_hint(lambda: _stop_hint(collection, bar.last)):
            report = _through_server(served, collection, paths, dict(
                label_from_folder=label_from_folder, prune=prune, batch_size=batch_size, include=include or [],
                exclude=exclude or []), bar.update)
        interrupts.work_done(lambda: _finished_line(collection, report, None))
        _report(report, collection, store, url, as_json)
        return
    with opened as st:
        from dmwan_qdrant.encoder import collection_bundle, load_bundle
        from dmwan_qdrant.ingest import ingest

        if st.collection_exists(collection):  # the ingest checks the model against the collection
            net = load_bundle(collection_bundle(collection, st.get_model_record(collection), model), device, runtime)
        else:
            net = load_bundle(model or _shipped_model(collection), device, runtime)
        warn_if_toy(net)
        common: dict[str, Any] = dict(label_from_folder=label_from_folder, prune=prune, batch_size=batch_size,
                                      include=include or (), exclude=exclude or (), export=export)
        with ProgressDisplay() as bar, interrupts.stop_hint(lambda: _stop_hint(collection, bar.last)):
            if ray:
                from dmwan_qdrant.ingest.ray_pipeline import ingest_ray

                report = ingest_ray(paths, st, collection, net, encoders=encoders, gpus_per_encoder=gpus_per_encoder,
                                    address=address, progress=bar.update, **common)
            else:
                report = ingest(paths, st, collection, net, num_workers=workers, progress=bar.update, **common)
            # From here on a signal interrupts nothing: the store closes, the report is printed in
            # full, and the program then ends with the line below.
            points: Optional[int] = None  # read by the line when a signal comes, so set after
            interrupts.work_done(lambda: _finished_line(collection, report, points))
            with contextlib.suppress(DmwanError):
                points = st.count(collection)
    _report(report, collection, store, url, as_json)


def _shipped_model(collection: str) -> str:
    """The model of a new collection given no --model: the shipped one, said on stderr."""
    from dmwan_qdrant.model.shipped import shipped_available, shipped_folder

    if not shipped_available():
        from dmwan_qdrant.model.card import MODEL_SOURCES

        raise UsageError(f"collection '{collection}' does not exist yet and the shipped model {SHIPPED_MODEL} is "
                         f"missing from this install ({shipped_folder()}): give --model BUNDLE to create it "
                         f"(a bundle comes from {MODEL_SOURCES})")
    typer.echo(f"model: {SHIPPED_MODEL}, the shipped sketch model (--model to choose another)", err=True)
    return SHIPPED_MODEL


def _stop_hint(collection: str, last: Any) -> str:
    """A stop's line, after the reason, where the ingest itself has not said more (from the last
    progress it reported)."""
    if last is None:
        return STARTUP_HINTS["ingest"]
    return (f"{last.done} of {last.total} files handled, the points written before are kept in '{collection}'; "
            "run the same command again to finish")


def _finished_line(collection: str, report: Any, points: Optional[int]) -> str:
    """The line for a signal that came after the ingest had finished: what is stored."""
    held = f"{points} points are" if points is not None else "its points are"
    return (f"the ingest had finished ({report.added} added, {report.updated} updated, {len(report.failed)} failed), "
            f"{held} stored in '{collection}'; nothing is left to run")


def _report(report: Any, collection: str, store: Optional[Path], url: Optional[str], as_json: bool) -> None:
    """The report on stdout (a summary, or JSON) and the exit code: 11 when some file failed."""
    if as_json:
        from dmwan_qdrant.store.factory import store_choice

        typer.echo(json.dumps({"store": store_choice(url, store)[1], "collection": collection, **report.to_dict()},
                              indent=2))
    else:
        _print_summary(collection, report)
    if report.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _through_server(served: StoreServedError, collection: str, paths: list[Path], options: dict[str, Any],
                    progress: Any = None) -> Any:
    """The ingest run by the `dmwan serve` that holds the store (same report and progress; the
    new photos are searchable when it returns; Ctrl-C stops the server's run)."""
    import os

    from dmwan_qdrant.server.client import ingest_through_server

    key = os.environ.get(ENV_DMWAN_API_KEY) or None  # the ingest needs the token; the key reads the stop's count
    if served.ingest_token is None:
        raise UsageError(f"the store is held by `dmwan serve` (pid {served.pid}) at {served.url}, which searches it "
                         "read-only and takes no ingest: stop the server, then run the ingest again")
    typer.echo(f"note: ingesting through `dmwan serve` at {served.url} (it holds the store and keeps answering "
               "searches meanwhile)", err=True)
    return ingest_through_server(served.url, collection, paths, options, key, served.ingest_token, progress)


def _print_summary(collection: str, report: Any) -> None:
    if report.decoded:
        read = f"{report.decoded} decoded in {report.seconds:.1f} s, {report.images_per_second:.1f} images/s"
    else:  # a rerun with nothing new: no rate of 0 images/s
        read = f"{'none decoded' if report.failed else 'none needed reading'}, {report.seconds:.1f} s"
    typer.echo(
        f"{collection}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.duplicates} duplicates, {report.pruned} pruned, {len(report.failed)} failed "
        f"({report.found} images found, {read})"
    )
    if report.missing:
        n = report.missing
        typer.echo(f"  {n} point{'s' if n != 1 else ''} under these paths point at files that are gone; "
                   "run the same command with --prune to drop them")
    if report.export:
        e = report.export
        also = f" (ids and paths in {e['sidecar']})" if e.get("sidecar") else ""
        typer.echo(f"  exported {e['rows']} point{'s' if e['rows'] != 1 else ''} to {e['file']}{also}")
    for path, reason in report.failed[:_MAX_LISTED_FAILURES]:
        typer.echo(f"  failed: {path}: {reason}")
    if len(report.failed) > _MAX_LISTED_FAILURES:
        typer.echo(f"  ... and {len(report.failed) - _MAX_LISTED_FAILURES} more (see --json)")


class ProgressDisplay:
    """A progress bar with images/s on a terminal; a line every few seconds otherwise (logs)."""

    def __init__(self, every_s: float = 5.0, label: str = "ingest", unit: str = "files") -> None:
        self.tty = sys.stderr.isatty()
        self.every_s = every_s
        self.label = label
        self.unit = unit
        self._last = 0.0
        self._bar = None
        self._task = None
        self.last: Any = None
        """The last progress reported (an `IngestProgress`), None before the first."""

    def __enter__(self) -> "ProgressDisplay":
        return self

    def _start(self) -> None:
        """The bar, from the first update on (lines written before it stay readable)."""
        if self.tty and self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f} images/s, {task.fields[failed]} failed"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None, rate=0.0, failed=0)

    def update(self, p: Any) -> None:
        self.last = p
        self._start()
        if self._bar is not None:
            self._bar.update(self._task, total=p.total, completed=p.done, rate=p.images_per_second, failed=p.failed)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s or p.done == p.total:
            self._last = now
            rate = f", {p.images_per_second:.1f} images/s" if p.images_per_second > 0 else ""
            typer.echo(f"{self.label}: {p.done}/{p.total} {self.unit}{rate}, {p.failed} failed", err=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
