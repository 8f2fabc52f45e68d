"""`open_store`: pick the backend from arguments and the environment; `create_collection` for a
model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs

from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.settings import ENV_QDRANT_API_KEY as ENV_API_KEY
from dmwan_qdrant.settings import ENV_QDRANT_URL as ENV_URL
from dmwan_qdrant.settings import ENV_STORE
from dmwan_qdrant.store.base import Store
from dmwan_qdrant.store.index import IndexSettings
from dmwan_qdrant.store.records import CollectionSpec



def default_store_path() -> Path:
    """The embedded store's folder: ``$DMWAN_STORE``, else ``<user data dir>/store``."""
    env = os.environ.get(ENV_STORE)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("dmwan-qdrant")) / "store"


def open_store(
    url: str | None = None,
    path: str | Path | None = None,
    api_key: str | None = None,
    memory: bool = False,
    read_only: bool = False,
) -> Store:
    """Open the store the arguments (or the environment) point at.

    In order: ``memory=True`` gives a `MemoryStore`; a ``url`` a `ServerStore`; a ``path`` an
    `EdgeStore` there; else ``$QDRANT_URL`` a `ServerStore`; else an `EdgeStore` at
    `default_store_path`. The API key defaults to ``$QDRANT_API_KEY`` for servers.
    ``read_only`` opens an embedded store for reading only: it must exist, nothing is created,
    and one that cannot be written is searched through a private copy (see `EdgeStore`).

    Raises:
        UsageError: both ``url`` and ``path`` given, or a malformed URL.
        StoreInUseError: the embedded store is open in another process.
    """
    if url and path:
        raise UsageError("give either a Qdrant URL or a store path, not both")
    if memory:
        from dmwan_qdrant.store.server import MemoryStore

        return MemoryStore()
    if not url and path is None:
        url = os.environ.get(ENV_URL) or None
    if url:
        from dmwan_qdrant.store.server import ServerStore

        return ServerStore(url, api_key=api_key or os.environ.get(ENV_API_KEY) or None)
    from dmwan_qdrant.store.edge import EdgeStore

    where = Path(path).expanduser() if path is not None else default_store_path()
    return EdgeStore(where, read_only=read_only)


def store_choice(url: str | None = None, path: str | Path | None = None) -> tuple[str, str, str]:
    """Which store `open_store` would open for these arguments, without opening it.

    Returns ``(backend, where, why)``: ``"server"`` and its URL, or ``"embedded"`` and the folder
    (absolute), and which option or variable chose it. The order is ``--url``, ``--store``,
    ``$QDRANT_URL``, ``$DMWAN_STORE``, then the default folder.
    """
    if url:
        return "server", url, "--url"
    if path is not None:
        return "embedded", str(Path(path).expanduser().resolve()), "--store"
    if os.environ.get(ENV_URL):
        return "server", os.environ[ENV_URL], f"${ENV_URL} (it wins over ${ENV_STORE}; --store wins over it)"
    if os.environ.get(ENV_STORE):
        return "embedded", str(default_store_path().resolve()), f"${ENV_STORE}"
    return "embedded", str(default_store_path().resolve()), f"the default (set ${ENV_STORE} or --store to change it)"


def create_collection(
    store: Store, name: str, model: dict[str, Any], index: IndexSettings | None = None
) -> None:
    """Create collection ``name`` for the model whose record is ``model`` (`model_record` of a
    bundle: its ``dim`` and ``token_dim`` size the vectors), with ``index`` (None: defaults)."""
    spec = CollectionSpec(int(model["dim"]), int(model["token_dim"]), model, index or IndexSettings())
    store.create_collection(name, spec)
