"""`dmwan serve`: keep the encoders loaded and answer sketch searches over HTTP, with the
sketch-pad page at ``/``."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.errors import CollectionNotFoundError, UsageError
from dmwan_qdrant.settings import (DEFAULT_HOST, DEFAULT_MAX_BATCH, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT,
                                   DEFAULT_WAIT_S, ENV_DMWAN_API_KEY, ENV_DMWAN_INGEST_KEY)

from .options import (API_KEY_HELP, MODEL_REFS, device_option, open_cli_store, runtime_option, store_option,
                      url_option, warn_if_toy)
from .root import app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
def serve_command(
    collections: Optional[list[str]] = typer.Option(
        None, "--collection", "-c", help="collection to serve (repeat for several; default: every one in the store)"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    qdrant_api_key: Optional[str] = typer.Option(None, "--qdrant-api-key", help=API_KEY_HELP),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(DEFAULT_PORT, "--port", "-p", min=0, max=65535, help="port (0: any free one)"),
    api_key: Optional[str] = typer.Option(
        None, "--api-key", help=f"require Authorization: Bearer KEY on the API (default: ${ENV_DMWAN_API_KEY})"
    ),
    ingest_key: Optional[str] = typer.Option(
        None, "--ingest-key", help=f"a write key: Authorization: Bearer KEY lets POST /collections/NAME/ingest in, "
                                   f"reading only under --ingest-root (default: ${ENV_DMWAN_INGEST_KEY}); the --api-key "
                                   "never writes"),
    ingest_roots: Optional[list[Path]] = typer.Option(
        None, "--ingest-root", metavar="DIR", help="a folder an ingest by --ingest-key may read (repeat for several)"),
    cors_origins: Optional[list[str]] = typer.Option(
        None, "--cors-origin", help="allow browser calls from this origin, e.g. https://app.example.com (repeat)"
    ),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="BUNDLE|NAME",
                                        help=f"model bundle: {MODEL_REFS} (one collection only; default: the "
                                             "collection's)"),
    device: Optional[str] = device_option(),
    runtime: str = runtime_option(),
    max_upload_mb: float = typer.Option(DEFAULT_MAX_UPLOAD_MB, "--max-upload-mb", min=0.01,
                                        help="largest request body, MB"),
    max_batch: int = typer.Option(DEFAULT_MAX_BATCH, "--max-batch", min=1,
                                  help="most requests per forward pass (1: no micro-batching)"),
    batch_wait_ms: float = typer.Option(DEFAULT_WAIT_S * 1000, "--batch-wait-ms", min=0.0,
                                        help="how long a request waits to share a forward pass"),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="encoder threads on CPU (default: cores - 1, leaving one to HTTP)"
    ),
    access_log: bool = typer.Option(False, "--access-log", help="log every request"),
) -> None:
    """Serve COLLECTIONS over HTTP: the sketch-pad page at /, the API documented at /docs.

    Without --collection it serves every collection of the store (--model then needs a store of
    exactly one).
    """
    from dmwan_qdrant.server.discovery import ServerAddress, remove_address, write_address

    if model is not None and collections and len(set(collections)) > 1:
        raise UsageError("--model goes with a single --collection (each collection loads its own model)")
    key = api_key or os.environ.get(ENV_DMWAN_API_KEY) or None
    write_key = ingest_key or os.environ.get(ENV_DMWAN_INGEST_KEY) or None
    roots = _ingest_roots(ingest_roots or [])
    if write_key is not None and key is not None and write_key == key:
        raise UsageError("--ingest-key must differ from --api-key: searching and writing are different rights")
    with open_cli_store(store, url, qdrant_api_key, read_only=not _writable_store(store, url)) as st:
        if not collections:
            collections = _every_collection(st, model is not None)
        from dmwan_qdrant.server.runner import bind, serve, url_of

        sock = bind(host, port)  # a busy port fails now, not after loading the models
        try:
            from dmwan_qdrant.server.app import ServeSettings, create_app
            from dmwan_qdrant.server.service import SearchService

            service = SearchService(st, collections, {collections[0]: model} if model else None, device, runtime)
            for name, net in service.models.items():
                warn_if_toy(net, f"collection {name}: ")
            _set_threads(threads, service)
            home = getattr(st, "path", None) if getattr(st, "backend", "") == "edge" and not getattr(st, "notice", None) else None
            token = secrets.token_urlsafe(24) if home is not None else None  # for `dmwan ingest` beside it
            settings = ServeSettings(api_key=key, cors_origins=tuple(cors_origins or ()), max_upload_mb=max_upload_mb,
                                     max_batch=max_batch, batch_wait_s=batch_wait_ms / 1000, ingest_token=token,
                                     ingest_key=write_key, ingest_roots=roots)
            web = create_app(service, settings)
            base = url_of(sock)

            def started() -> None:
                if home is not None:
                    write_address(Path(home), ServerAddress(base, os.getpid(), tuple(service.collections), key is not None,
                                                             token))
                names = ", ".join(service.collections)
                typer.echo(f"serving {names} at {base}/  (API docs: {base}/docs; Ctrl-C stops)", err=True)
                if write_key is not None and not roots:
                    typer.echo("warning: --ingest-key without --ingest-root: every ingest by key is refused", err=True)
                if not _is_loopback(host) and key is None:
                    typer.echo(f"warning: listening on {host} without --api-key: anyone who can reach this "
                               "machine can search and view the photos", err=True)

            try:
                stopped_by = serve(web, sock, on_started=started, access_log=access_log,
                                   log_level="info" if access_log else "warning")
            finally:
                if home is not None:
                    remove_address(Path(home))
        finally:
            sock.close()
    typer.echo("stopped" + (" (signal)" if stopped_by else ""), err=True)


def _ingest_roots(folders: list[Path]) -> tuple[Path, ...]:
    """The ``--ingest-root`` folders, resolved (symlinks too), each an existing folder."""
    roots = []
    for folder in folders:
        resolved = folder.expanduser().resolve()
        if not resolved.is_dir():
            raise UsageError(f"--ingest-root {folder}: not a folder")
        roots.append(resolved)
    return tuple(roots)


def _every_collection(st: Any, with_model: bool) -> list[str]:
    """Every collection of the open store ``st``, for a `dmwan serve` given no --collection
    (exactly one where --model is given), named on stderr."""
    names = st.list_collections()
    if not names:
        raise CollectionNotFoundError("the store has no collection to serve yet: fill one first with "
                                      "`dmwan ingest PATH --collection NAME`")
    if with_model and len(names) > 1:
        raise UsageError(f"--model goes with a single collection, and the store has {len(names)} "
                         f"({', '.join(names)}): pass --collection NAME too")
    typer.echo(f"collections: {', '.join(names)} (every one in the store; --collection to choose)", err=True)
    return names


def _writable_store(store: Optional[Path], url: Optional[str]) -> bool:
    """Whether the embedded store the options name can be written in place: the server then
    opens it so (`dmwan ingest` goes through it); else it searches read-only, through a private
    copy where the medium is read-only."""
    from dmwan_qdrant.store import disk
    from dmwan_qdrant.store.factory import store_choice

    backend, where, _ = store_choice(url, store)
    folder = Path(where)
    return backend == "embedded" and folder.is_dir() and disk.why_not_writable(folder) is None


def _set_threads(threads: Optional[int], service: Any) -> None:
    """Leave a core to the event loop: on a small CPU machine, intra-op threads that compete with
    it for every core spin and slow each forward pass (measured 9.6-12.9 ms against 7.7-8.5 ms
    with one thread fewer, on 2 cores, in benchmarks/serve_latency.py)."""
    from dmwan_qdrant.encoder import usable_cores

    service.open_encoders(threads or max(1, usable_cores() - 1))
