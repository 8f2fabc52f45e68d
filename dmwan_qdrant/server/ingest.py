"""Ingest through a running server: `dmwan ingest` into a store that `dmwan serve` holds.

The embedded store opens in one process, so while a server holds it the CLI hands the ingest to
the server: ``POST /collections/{name}/ingest`` with the paths (which the server reads: it runs
on the same machine, as the same user) and the options. The server runs the library's ingest on
its store worker, between searches, with the collection's loaded encoder; the new photos are
searchable as soon as it answers with the report.

Writing is a right of its own, apart from searching (the API key only searches). Two callers are
let in:

* one that sends the token of the server's address file (``X-Dmwan-Ingest-Token``; the file is
  readable by the store's owner alone): the same user on the same machine, who can read those
  files anyway; its paths are taken as they are;
* one that sends the write key (``Authorization: Bearer``, `dmwan serve --ingest-key`): its
  paths, resolved, and every file found under them, symlinks followed, must lie under one of the
  folders the server was started with (``--ingest-root``), else the whole request is refused
  with a 403 before anything is read; with no root, such an ingest is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.server.guard import bearer_token
from dmwan_qdrant.server.http_errors import HTTPError, one_line, status_of
from dmwan_qdrant.server.ingest_job import IngestJob, StoreOnWorker, ingest_encoder, lower_priority

TOKEN_HEADER = "x-dmwan-ingest-token"
MAX_BATCH_SIZE = 1024


class IngestBody(BaseModel):
    """The options of `dmwan ingest` that a server run takes."""

    paths: list[str] = Field(min_length=1, description="absolute files or folders on the server's machine")
    label_from_folder: bool = False
    prune: bool = False
    include: list[str] = []
    exclude: list[str] = []
    batch_size: int = Field(64, ge=1, le=MAX_BATCH_SIZE)


def check_ingest_allowed(headers: Any, token: str | None, ingest_key: str | None) -> str:
    """Who may write: ``"token"`` (the address file's token) or ``"key"`` (the write key).

    Raises:
        HTTPError: 403 for anyone else, the search key included.
    """
    sent = headers.get(TOKEN_HEADER)
    if token is not None and sent is not None and secrets.compare_digest(sent, token):
        return "token"
    key = bearer_token(headers.get("authorization") or "")
    if ingest_key is not None and key is not None and secrets.compare_digest(key, ingest_key):
        return "key"
    raise HTTPError(403, "ingest through the server needs the token of its address file (a `dmwan ingest` on the "
                         "store's machine sends it) or the server's --ingest-key; the search key cannot write")


def check_ingest_request(service: Any, body: IngestBody) -> None:
    """Refuse, before any work, an ingest the server cannot run: into a private copy of a
    read-only store, or of a relative path (which it would resolve against its own folder).

    Raises:
        UsageError: either (a 400).
    """
    notice = getattr(service.store, "notice", None)
    if notice:
        raise UsageError(f"this server searches a private copy of a read-only store ({notice}): nothing can be added")
    relative = [p for p in body.paths if not Path(p).is_absolute()]
    if relative:
        raise UsageError(f"{relative[0]}: give absolute paths (the server resolves none against its own folder)")


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def check_under_roots(body: IngestBody, roots: tuple[Path, ...]) -> None:
    """Refuse (403) an ingest by the write key that would read outside ``roots``: a path that
    resolves outside them (``..``, a symlink), or a file found under one that does (a symlink
    out). Walks the paths (absolute: `check_ingest_request`) as the ingest will, before it reads
    a byte.

    Raises:
        HTTPError: 403 naming the first path or file outside, or no roots at all.
    """
    from dmwan_qdrant.ingest.selection import Selection, walk_images

    if not roots:
        raise HTTPError(403, "this server reads no folder for an ingest by key: start it with --ingest-root DIR")
    for raw in body.paths:
        if not _under(Path(raw).resolve(), roots):
            raise HTTPError(403, f"{raw}: outside the server's ingest roots")
    try:
        files = walk_images(body.paths, Selection(body.include, body.exclude))
        for f in files:
            if not _under(f.resolve(), roots):
                raise HTTPError(403, f"{f}: leads outside the server's ingest roots (a symlink?)")
    except UsageError as exc:  # a path that does not exist: the ingest would say so too
        raise HTTPError(400, str(exc)) from None


def run_ingest(service: Any, name: str, body: IngestBody, worker: concurrent.futures.Executor,
               job: IngestJob) -> dict[str, Any]:
    """The ingest of ``body`` (checked by `check_ingest_request`) into the served collection
    ``name``, on the calling thread (the server's ingest thread, whose priority it lowers), its
    store calls on the store's ``worker`` (`dmwan_qdrant.server.ingest_job`); the report as JSON.

    Raises:
        Interrupted: ``job.stop`` was set (the client went away): the run stopped at a batch
            boundary, with the usual line of what is stored.
    """
    from dmwan_qdrant.ingest import ingest

    lower_priority()
    model = worker.submit(service.current_model, name).result()  # the collection's model, swapped or not
    report = ingest(body.paths, StoreOnWorker(service.store, worker), name, ingest_encoder(model),
                    label_from_folder=body.label_from_folder, prune=body.prune, batch_size=body.batch_size,
                    include=body.include, exclude=body.exclude, progress=job.progress)
    return report.to_dict()


#: How often a streamed ingest checks that its client is still there, in seconds.
DISCONNECT_POLL_S = 0.5


async def ingest_lines(request: Any, future: asyncio.Future, queue: asyncio.Queue, job: IngestJob) -> AsyncIterator[str]:
    """The NDJSON lines of a streamed ingest: its progress, then its report or its error. A
    client that goes away (or a server that stops streaming) sets ``job.stop``: the ingest stops
    at its next batch boundary, keeping what it stored."""
    def line(progress: dict[str, Any]) -> str:
        return json.dumps({"progress": progress}) + "\n"

    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, future}, timeout=DISCONNECT_POLL_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield line(getter.result())
                continue
            getter.cancel()
            if future.done():
                while not queue.empty():
                    yield line(queue.get_nowait())
                break
            if await request.is_disconnected():
                job.stop.set()
        try:
            yield json.dumps({"report": future.result()}) + "\n"
        except Exception as exc:  # noqa: BLE001 - every error becomes the stream's last line
            yield json.dumps({"error": one_line(str(exc)), "status": status_of(exc)}) + "\n"
    finally:
        if not future.done():
            job.stop.set()
