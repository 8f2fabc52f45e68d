"""Options shared by the commands that open a store (one help text, one behaviour)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.errors import StoreError, StoreInUseError, StoreServedError, UsageError
from dmwan_qdrant.model.shipped import SHIPPED_MODEL
from dmwan_qdrant.settings import ENV_COLLECTION, ENV_QDRANT_API_KEY, ENV_QDRANT_URL, ENV_STORE

STORE_HELP = f"embedded store folder (default: ${ENV_STORE}, else the user data folder)"
URL_HELP = f"Qdrant server URL, e.g. http://localhost:6333 (default: ${ENV_QDRANT_URL})"
API_KEY_HELP = f"Qdrant API key (default: ${ENV_QDRANT_API_KEY})"
MODEL_REFS = f"a folder, hf-hub:ORG/NAME, or {SHIPPED_MODEL}, the shipped sketch model"
"""What every ``--model`` takes, for its help."""
DEFAULT_COLLECTION_HELP = f"default: ${ENV_COLLECTION}, else the store's only collection"


def store_option() -> Any:
    return typer.Option(None, "--store", metavar="DIR", help=STORE_HELP, file_okay=False)


def url_option() -> Any:
    return typer.Option(None, "--url", metavar="URL", help=URL_HELP)


def api_key_option() -> Any:
    return typer.Option(None, "--api-key", metavar="KEY", help=API_KEY_HELP)


def open_cli_store(store: Optional[Path], url: Optional[str], api_key: Optional[str], read_only: bool = False,
                   create: bool = False):
    """Open the store the options name (see `dmwan_qdrant.store.open_store` for the order).

    ``read_only`` for commands that only read: one that cannot be written (read-only medium, full
    disk) is searched through a private copy. Only a command that fills a store (``create``,
    ingest) makes a missing embedded store folder: for any other, a mistyped ``--store`` is an
    error naming the folder, never a new empty store.
    """
    from dmwan_qdrant.store import open_store
    from dmwan_qdrant.store.factory import store_choice

    if api_key and store is not None:
        raise UsageError("--api-key goes with --url, not with --store")
    backend, where, why = store_choice(url, store)
    if backend == "embedded" and not create and not Path(where).is_dir():
        raise StoreError(f"no store at {where} (chosen by {why}); `dmwan ingest` creates one, "
                         "`dmwan info` says where the commands look")
    try:
        opened = open_store(url=url, path=store, api_key=api_key, read_only=read_only)
    except StoreInUseError as e:
        raise _served(e, Path(where)) from None
    typer.echo(f"store: {where} ({backend})", err=True)  # which store, always: the default hides it
    notice = getattr(opened, "notice", None)
    if notice:
        typer.echo(f"note: {notice}", err=True)
    return opened


def default_collection(names: Any, where: str = "the store") -> str:
    """The collection a command given no ``--collection`` uses (`choose_collection`), named on
    stderr with the reason."""
    from dmwan_qdrant.store.choosing import choose_collection

    name, why = choose_collection(names, where)
    typer.echo(f"collection: {name} ({why})", err=True)
    return name


def _served(error: StoreInUseError, folder: Path) -> StoreInUseError:
    """``error``, or a `StoreServedError` naming the `dmwan serve` that holds the store ``folder``."""
    from dmwan_qdrant.server.discovery import find_server

    server = find_server(folder)
    if server is None:
        return error
    return StoreServedError(
        f"store {folder} is held by `dmwan serve` (pid {server.pid}) at {server.url}: stop it to change "
        f"the store (searches and ingests go through it: `dmwan query` and `dmwan ingest` do so by themselves, "
        f"or use {server.url}/ )",
        server.url, server.pid, server.auth, server.ingest_token, server.collections,
    )


def device_option() -> Any:
    return typer.Option(None, "--device", help="device for the model: cpu, cuda[:N] or mps (default: the best here)")


def warn_if_toy(model: Any, where: str = "") -> None:
    """One ``warning:`` line on stderr when ``model`` never saw a real photo
    (`dmwan_qdrant.encoder.model_warning`)."""
    from dmwan_qdrant.encoder import model_warning

    warning = model_warning(model)
    if warning:
        typer.echo(f"warning: {where}{warning}", err=True)


RUNTIME_HELP = ("encoder runtime: auto (ONNX when the bundle has exported graphs and onnxruntime is installed, "
                "else torch), torch or onnx")


def runtime_option() -> Any:
    return typer.Option("auto", "--runtime", metavar="RUNTIME", help=RUNTIME_HELP)
