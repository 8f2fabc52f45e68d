"""Where a running server leaves its address: ``<store>/.server.json``, beside the store's lock.

An embedded store is open in one process at a time. While `dmwan serve` holds it, the CLI finds
the server here and searches through it instead of failing with "in use". The file is trusted
only while the process it names is alive and is the one holding the store's lock, so a file left
by a killed server is ignored (and replaced by the next one). Only stdlib here: the CLI reads it
before importing anything heavy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from dmwan_qdrant.store.lock import LOCK_NAME, is_running

SERVER_FILE = ".server.json"


@dataclass(frozen=True)
class ServerAddress:
    """A running `dmwan serve` on an embedded store.

    Attributes:
        url: its base URL, e.g. ``http://127.0.0.1:8000``.
        pid: its process id.
        collections: the collections it serves.
        auth: whether it requires an API key (``$DMWAN_API_KEY`` on the client side).
        ingest_token: what `dmwan ingest` sends to add photos through it (the file is the
            store owner's alone), or None for a server that takes none.
    """

    url: str
    pid: int
    collections: tuple[str, ...]
    auth: bool
    ingest_token: str | None = None


def write_address(store: Path, address: ServerAddress) -> Path:
    """Record ``address`` in the store folder (atomically: a reader never sees half a file;
    readable by this user alone, since it holds the ingest token)."""
    path = store / SERVER_FILE
    tmp = store / f"{SERVER_FILE}.{os.getpid()}.tmp"
    data = {"url": address.url, "pid": address.pid, "collections": list(address.collections), "auth": address.auth,
            "ingest_token": address.ingest_token}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data) + "\n")
    os.replace(tmp, path)
    return path


def remove_address(store: Path) -> None:
    """Remove this process's address file (another server's is left alone)."""
    found = _read(store / SERVER_FILE)
    if found is not None and found.pid == os.getpid():
        (store / SERVER_FILE).unlink(missing_ok=True)


def find_server(store: Path) -> ServerAddress | None:
    """The server holding the embedded store at ``store``, or None where there is none alive."""
    found = _read(Path(store) / SERVER_FILE)
    if found is None or found.pid == os.getpid() or not is_running(found.pid):
        return None
    try:
        holder = int((Path(store) / LOCK_NAME).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return found if holder == found.pid else None


def _read(path: Path) -> ServerAddress | None:
    try:
        data = json.loads(path.read_text())
        token = data.get("ingest_token")
        return ServerAddress(str(data["url"]), int(data["pid"]), tuple(data.get("collections", ())), bool(data.get("auth")),
                             str(token) if token else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None

