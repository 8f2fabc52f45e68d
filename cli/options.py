"""Options shared by the commands that open a store (one help text, one behaviour)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.errors import UsageError

STORE_HELP = "embedded store folder (default: $DMWAN_STORE, else the user data folder)"
URL_HELP = "Qdrant server URL, e.g. http://localhost:6333 (default: $QDRANT_URL)"
API_KEY_HELP = "Qdrant API key (default: $QDRANT_API_KEY)"


def store_option() -> Any:
    return typer.Option(None, "--store", help=STORE_HELP, file_okay=False)


def url_option() -> Any:
    return typer.Option(None, "--url", help=URL_HELP)


def api_key_option() -> Any:
    return typer.Option(None, "--api-key", help=API_KEY_HELP)


def open_cli_store(store: Optional[Path], url: Optional[str], api_key: Optional[str]):
    """Open the store the options name (see `dmwan_qdrant.store.open_store` for the order)."""
    from dmwan_qdrant.store import open_store

    if api_key and store is not None:
        raise UsageError("--api-key goes with --url, not with --store")
    return open_store(url=url, path=store, api_key=api_key)
