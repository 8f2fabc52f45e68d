"""Ingest through a running server: `dmwan ingest` into a store that `dmwan serve` holds.

The embedded store opens in one process, so while a server holds it the CLI hands the ingest to
the server: ``POST /collections/{name}/ingest`` with the paths (which the server reads: it runs
on the same machine, as the same user) and the options. The server runs the library's ingest on
its store worker, between searches, with the collection's loaded encoder; the new photos are
searchable as soon as it answers with the report.

Only a caller that proves it may write is let in: one that sends the token of the server's
address file (``X-Dmwan-Ingest-Token``; the file is readable by the store's owner alone), or the
server's API key when it has one (checked by the `Guard` before this route).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.server.http_errors import HTTPError

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


def check_ingest_allowed(headers: Any, token: str | None, api_key: str | None) -> None:
    """Raise 403 unless the request carries the address file's token, or the server has an API
    key (which the guard has checked by now)."""
    if api_key is not None:
        return
    sent = headers.get(TOKEN_HEADER)
    if token is None or sent is None or not secrets.compare_digest(sent, token):
        raise HTTPError(403, "ingest through the server needs the token of its address file (a `dmwan ingest` "
                             "on the store's machine sends it) or the server's --api-key")


def run_ingest(service: Any, name: str, body: IngestBody) -> dict[str, Any]:
    """The ingest of ``body`` into the served collection ``name``, on the calling (store) thread;
    the report as JSON."""
    from dmwan_qdrant.ingest import ingest

    model = service.model(name)  # 404 for a collection this server does not serve
    notice = getattr(service.store, "notice", None)
    if notice:
        raise UsageError(f"this server searches a private copy of a read-only store ({notice}): nothing can be added")
    relative = [p for p in body.paths if not Path(p).is_absolute()]
    if relative:
        raise UsageError(f"{relative[0]}: give absolute paths (the server resolves none against its own folder)")
    report = ingest(body.paths, service.store, name, model, label_from_folder=body.label_from_folder,
                    prune=body.prune, batch_size=body.batch_size, include=body.include, exclude=body.exclude)
    return report.to_dict()
