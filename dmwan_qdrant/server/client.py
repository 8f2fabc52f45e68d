"""Searching through a running `dmwan serve`: what `dmwan query` does when a server holds the store.

The answers are the same `Result` objects a local search gives, and the server's one-line errors
come back as the same `DmwanError` classes (so the CLI's exit codes do not change). No torch here:
a query through a server starts in a fraction of the time a local one needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from dmwan_qdrant.errors import (
    CollectionNotFoundError,
    DmwanError,
    ImageError,
    ServerUnavailableError,
    UsageError,
)
from dmwan_qdrant.imageio import file_errors
from dmwan_qdrant.search.results import Result
from dmwan_qdrant.settings import ENV_DMWAN_API_KEY
from dmwan_qdrant.store.records import CollectionInfo

TIMEOUT_S = 60.0

_BY_STATUS: dict[int, type[DmwanError]] = {
    400: UsageError, 401: UsageError, 403: UsageError, 404: CollectionNotFoundError, 413: ImageError, 415: ImageError,
    422: UsageError, 503: ServerUnavailableError,
}


def _error(response: httpx.Response, url: str) -> DmwanError:
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}"
    if response.status_code == 401:
        message += f" (set ${ENV_DMWAN_API_KEY} to the server's --api-key)"
    return _BY_STATUS.get(response.status_code, ServerUnavailableError)(f"{message} [server {url}]")


def _call(method: str, url: str, route: str, api_key: str | None, **kwargs: Any) -> httpx.Response:
    """One API call; a failure as the `DmwanError` the CLI reports for it."""
    headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    kwargs.setdefault("timeout", TIMEOUT_S)
    try:
        response = httpx.request(method, url.rstrip("/") + route, headers=headers, **kwargs)
    except httpx.HTTPError as e:
        raise ServerUnavailableError(f"the server at {url} does not answer ({type(e).__name__}: {e})") from None
    if response.status_code != 200:
        raise _error(response, url)
    return response


INGEST_TIMEOUT_S = None
"""An ingest answers when it is done: no read timeout (the connection still fails fast)."""


def ingest_through_server(url: str, collection: str, paths: Sequence[str | Path], options: dict[str, Any],
                          api_key: str | None = None, token: str | None = None,
                          progress: Callable[[Any], None] | None = None) -> Any:
    """`dmwan_qdrant.ingest.ingest` run by the server at ``url`` on the store it holds: the same
    `IngestReport`. ``paths`` are sent absolute; ``options`` are the server route's
    (`dmwan_qdrant.server.ingest.IngestBody`); ``token`` is the address file's; ``progress`` gets
    an `IngestProgress` after each batch, as a local ingest's callback does.

    The answer streams (a line per batch); a stop here (Ctrl-C: `Interrupted`) closes the
    connection, the server stops the run at its next batch boundary, and the `Interrupted` is
    raised again with the usual line: what is stored, and to run the same command again.

    Raises:
        DmwanError: the server's error, as the class the CLI reports for its status.
        Interrupted: stopped here; the message says what the server stored.
    """
    import json

    from dmwan_qdrant.errors import Interrupted
    from dmwan_qdrant.ingest.report import IngestProgress, IngestReport
    from dmwan_qdrant.server.ingest import TOKEN_HEADER

    headers = {TOKEN_HEADER: token} if token else {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = {"paths": [str(Path(p).expanduser().absolute()) for p in paths], **options}
    last: IngestProgress | None = None
    data: dict[str, Any] | None = None
    try:
        with httpx.stream("POST", url.rstrip("/") + f"/collections/{collection}/ingest", params={"stream": "true"},
                          json=body, headers=headers, timeout=httpx.Timeout(TIMEOUT_S, read=INGEST_TIMEOUT_S)) as r:
            if r.status_code != 200:
                r.read()
                raise _error(r, url)
            for raw in r.iter_lines():
                if not raw.strip():
                    continue
                message = json.loads(raw)
                if "progress" in message:
                    fields = IngestProgress.__dataclass_fields__
                    last = IngestProgress(**{k: v for k, v in message["progress"].items() if k in fields})
                    if progress is not None:
                        progress(last)
                elif "report" in message:
                    data = message["report"]
                elif "error" in message:
                    status = int(message.get("status") or 500)
                    cls = Interrupted if status == 130 else _BY_STATUS.get(status, DmwanError)
                    raise cls(f"{message['error']} [server {url}]")
    except Interrupted as stop:
        raise Interrupted(_stopped_line(stop, url, collection, api_key, last), stop.signum) from None
    except httpx.HTTPError as e:
        raise ServerUnavailableError(f"the server at {url} stopped answering ({type(e).__name__}: {e})") from None
    except ValueError:
        raise ServerUnavailableError(f"the server at {url} sent an ingest answer that is not JSON lines") from None
    if data is None:
        raise ServerUnavailableError(f"the server at {url} ended the ingest without a report")
    failed = [(str(f["path"]), str(f["reason"])) for f in data.pop("failed", [])]
    return IngestReport(**{k: v for k, v in data.items() if k in IngestReport.__dataclass_fields__}, failed=failed)


def _stopped_line(stop: Any, url: str, collection: str, api_key: str | None, last: Any) -> str:
    """A stop's line for an ingest through a server, as a local ingest's: the reason, how far it
    got, what the server holds (asked after the stop), what next."""
    from dmwan_qdrant.ingest.records import stop_line

    handled = f"{last.done} of {last.total} files handled" if last is not None else "stopped at the start"
    try:
        points = _call("GET", url, f"/collections/{collection}", api_key, timeout=10).json()["points"]
        held = f"{points} points are stored in '{collection}' (the server stops at its next batch)"
    except (DmwanError, KeyError, TypeError, ValueError):
        held = f"the points written before are kept in '{collection}'"
    return stop_line(stop, handled, held)


class ServerResults(list):
    """A server's answer to a search: the result lists, one per query (a plain list of them), and
    ``rerank``, whether the sketch queries were re-ranked (the request's choice, or the
    collection's model's)."""

    def __init__(self, results: list[list[Result]], rerank: bool) -> None:
        super().__init__(results)
        self.rerank = rerank


def search_through_server(
    url: str,
    collection: str,
    sketches: Sequence[str | Path | Any] = (),
    text: str | None = None,
    k: int = 10,
    filters: Sequence[str] = (),
    rerank: bool | None = None,
    prefetch: int = 100,
    api_key: str | None = None,
    photos: Sequence[Any] = (),
    like: Sequence[str] = (),
    ef: int | None = None,
) -> ServerResults:
    """`dmwan_qdrant.search.search_sketches` (or `search_text`, or `dmwan_qdrant.search.similar`'s
    ``search_photos`` / ``search_like`` for ``photos`` / ``like``) answered by a server at ``url``.
    ``rerank`` None leaves the re-rank to the collection's model (its bundle's choice); ``ef``
    None leaves the HNSW search candidates to the collection's default.

    Raises:
        ImageError: a sketch file that cannot be read, here or by the server.
        CollectionNotFoundError, UsageError: as the server answers them.
        ServerUnavailableError: the server does not answer.
    """
    params: list[tuple[str, Any]] = [("k", k), ("prefetch", prefetch)]
    if rerank is not None:
        params.append(("rerank", str(bool(rerank)).lower()))
    params += [("filter", f) for f in filters]
    if ef is not None:
        params.append(("ef", ef))
    kwargs: dict[str, Any]
    if text is not None:
        kwargs = {"json": {"text": text}}
    elif like:
        kwargs = {"json": {"like": list(like)}}
    else:
        field, given = ("photo", photos) if photos else ("sketch", sketches)
        files = []
        for p in given:  # files, or sources already read (`dmwan_qdrant.search.queries.QuerySource`)
            if hasattr(p, "data"):
                files.append((field, (p.name, p.data, "application/octet-stream")))
                continue
            with file_errors(p):
                files.append((field, (str(p), Path(p).read_bytes(), "application/octet-stream")))
        kwargs = {"files": files}
    answer = _call("POST", url, f"/collections/{collection}/search", api_key, params=params, **kwargs).json()
    results = [
        [Result(int(r["rank"]), float(r["score"]), str(r["path"]), r.get("label"), str(r["id"]),
                {"path": r["path"], "label": r.get("label"), "width": r.get("width"), "height": r.get("height")})
         for r in q["results"]]
        for q in answer["queries"]
    ]
    return ServerResults(results, bool(answer.get("rerank")))


def collections_through_server(url: str, api_key: str | None = None) -> list[CollectionInfo]:
    """The collections a server serves, as the store would describe them.

    Raises:
        ServerUnavailableError: the server does not answer; UsageError: a wrong API key.
    """
    response = _call("GET", url, "/collections", api_key)
    return [
        CollectionInfo(c["name"], c["backend"], c["points"], c["vectors"]["global"], c["vectors"]["tokens"], c["model"],
                       c["index"]["indexed_vectors"], c["index"]["state"], c["index"]["segments"], c["index"]["status"])
        for c in response.json()["collections"]
    ]
