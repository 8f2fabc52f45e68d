"""The HTTP app: `create_app` builds the FastAPI application over a `SearchService`.

Every store and encoder call runs on one worker thread, off the event loop; searches reach it
through a micro-batcher, so that requests arriving together share one forward pass. The same app
runs under uvicorn (`dmwan serve`) and inside a Ray Serve replica (`dmwan_qdrant.server.ray_app`,
which swaps in ``@serve.batch``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from dmwan_qdrant import __version__
from dmwan_qdrant.errors import DmwanError
from dmwan_qdrant.search.request import SearchRequest
from dmwan_qdrant.search.reranking import DEFAULT_PREFETCH, bundle_rerank
from dmwan_qdrant.server.batching import MicroBatcher
from dmwan_qdrant.server.guard import Guard
from dmwan_qdrant.server.http_errors import HTTPError, error_response, one_line
from dmwan_qdrant.server.ingest import (IngestBody, check_ingest_allowed, check_ingest_request, check_under_roots,
                                        ingest_lines, run_ingest)
from dmwan_qdrant.server.ingest_job import IngestJob
from dmwan_qdrant.server.metrics import CONTENT_TYPE, ServerMetrics
from dmwan_qdrant.server.photos import THUMBNAIL_SIZES, ThumbnailCache, media_type, photo_file
from dmwan_qdrant.server.requests import read_search
from dmwan_qdrant.server.service import MAX_EF, MAX_K, MAX_PREFETCH, SearchAnswer, SearchService
from dmwan_qdrant.settings import DEFAULT_MAX_BATCH, DEFAULT_MAX_UPLOAD_MB, DEFAULT_WAIT_S

BatchSearch = Callable[[SearchRequest], Awaitable[SearchAnswer]]


@dataclass(frozen=True)
class ServeSettings:
    """How a server behaves.

    Attributes:
        api_key: bearer token required on every route but the health checks and the page.
        cors_origins: origins allowed to call the API from a browser (none: CORS closed).
        max_upload_mb: largest request body, in megabytes.
        max_batch: most requests per forward pass (1: no micro-batching).
        batch_wait_s: how long a request waits for others to share its forward pass.
        ingest_token: the token `dmwan ingest` sends to add photos through this server (see
            `dmwan_qdrant.server.ingest`), from the address file; None: none.
        ingest_key: the write key: a bearer token that lets an ingest in (and searches), which
            then reads only under ``ingest_roots``; None: none. The API key never writes.
        ingest_roots: resolved folders an ingest let in by ``ingest_key`` may read (none: such
            an ingest is refused).
    """

    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_batch: int = DEFAULT_MAX_BATCH
    batch_wait_s: float = DEFAULT_WAIT_S
    ingest_token: str | None = None
    ingest_key: str | None = None
    ingest_roots: tuple[Path, ...] = ()


SEARCH_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "sketch": {"type": "array", "items": {"type": "string", "format": "binary"},
                           "description": "one file field per sketch, searched each on its own"},
                "photo": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "more like these photos (embedded as photos)"},
                "like": {"type": "array", "items": {"type": "string"},
                         "description": "more like these stored points (point ids)"}}}},
            "application/json": {"schema": {"type": "object", "properties": {
                "sketches": {"type": "array", "items": {"type": "string"},
                             "description": "base64 PNGs or data: URLs"},
                "text": {"type": "string", "description": "a text query, e.g. 'a red shoe'"},
                "photos": {"type": "array", "items": {"type": "string"},
                           "description": "more like these photos: base64 or data: URLs, embedded as photos"},
                "like": {"type": "array", "items": {"type": "string"},
                         "description": "more like these stored points (point ids; each left out of its own results)"},
                "k": {"type": "integer"},
                "filter": {"oneOf": [
                    {"type": "array", "items": {"type": "string"},
                     "description": "CLI syntax: label=shoe, label=shoe,boot, width>=640, path^=/photos/"},
                    {"type": "object", "description": 'e.g. {"label": ["shoe", "boot"], "width": {"gte": 640}, '
                                                      '"path": {"prefix": "/photos/"}}'}]},
                "rerank": {"type": "boolean"}, "prefetch": {"type": "integer"},
                "ef": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_EF,
                       "description": "HNSW search candidates (null: the collection's default)"}}}},
        },
    }
}


def static_dir() -> Path:
    """The folder of the sketch-pad page's files."""
    return Path(str(resources.files("dmwan_qdrant.server") / "static"))


def create_app(
    service: SearchService,
    settings: ServeSettings | None = None,
    batch_search: Callable[[SearchService, concurrent.futures.Executor], BatchSearch] | None = None,
) -> FastAPI:
    """The FastAPI app serving ``service``.

    Args:
        service: the loaded collections and their store; closed when the app shuts down.
        settings: API key, CORS, upload limit and batching (defaults: `ServeSettings()`).
        batch_search: builds the function a search request is answered through, given the
            service and the worker executor; default a `MicroBatcher` over
            `SearchService.search_batch`.
    """
    settings = settings or ServeSettings()
    metrics = ServerMetrics()
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dmwan-worker")
    thumbnails = ThumbnailCache()
    ingester = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dmwan-ingest")
    running: set[IngestJob] = set()  # at most one ingest at a time
    batcher: MicroBatcher[SearchRequest, SearchAnswer] | None = None
    if batch_search is None:
        batcher = MicroBatcher(service.search_batch, executor, settings.max_batch, settings.batch_wait_s)
        search: BatchSearch = batcher.submit
    else:
        search = batch_search(service, executor)

    async def in_worker(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for job in list(running):  # a stopping server stops its ingest at a batch boundary
            job.stop.set()
        ingester.shutdown(wait=True)
        if batcher is not None:
            await batcher.close()
        executor.submit(service.close).result()
        executor.shutdown(wait=True)

    app = FastAPI(
        title="dmwan sketch search",
        version=__version__,
        description="Search photo collections with a drawing (DMWAN zero-shot sketch-based image retrieval on Qdrant).",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.executor = executor
    app.state.metrics = metrics
    app.state.settings = settings

    @app.exception_handler(DmwanError)
    async def _dmwan_error(request: Request, exc: DmwanError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return JSONResponse({"error": one_line(f"{where or 'request'}: {first.get('msg', 'invalid')}")}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse({"error": one_line(message)}, status_code=exc.status_code, headers=exc.headers)

    static = static_dir()

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        if not request.url.path.endswith("/"):  # under a prefix: the page's relative URLs need the slash
            return RedirectResponse(request.url.path + "/")
        return FileResponse(static / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """The models are loaded and the store answers for every served collection (else 503)."""
        try:
            await in_worker(service.check_ready)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return JSONResponse({"error": one_line(f"not ready: {exc}")}, status_code=503)
        return JSONResponse({"status": "ready", "collections": service.collections})

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        """Prometheus text: requests, latency, embed and search time, batch sizes."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/collections", tags=["collections"])
    async def list_collections() -> dict[str, Any]:
        """The served collections, with their points, model and index state."""
        infos = [await in_worker(service.info, name) for name in service.collections]
        return {"collections": infos}

    @app.get("/collections/{name}", tags=["collections"])
    async def collection(name: str) -> dict[str, Any]:
        """Points, model, vector sizes and index state of a served collection."""
        return await in_worker(service.info, name)

    @app.post("/collections/{name}/search", tags=["search"], openapi_extra=SEARCH_BODY_DOC)
    async def search_route(
        request: Request,
        name: str,
        k: int = Query(10, ge=1, le=MAX_K, description="results per query"),
        filter: list[str] | None = Query(
            None, description="payload condition, repeatable (ANDed): label=shoe, label=shoe,boot, width>=640, path^=/photos/"),
        rerank: bool | None = Query(
            None, description="re-rank the top prefetch by the fused global and local-token score (default: as the "
                              "collection's model chose on its validation classes)"),
        prefetch: int = Query(DEFAULT_PREFETCH, ge=1, le=MAX_PREFETCH, description="candidates re-ranked"),
        ef: int | None = Query(
            None, ge=1, le=MAX_EF,
            description="HNSW search candidates: more finds more of the exact top k, slower (default: the "
                        "collection's, set by `dmwan collections create --ef`)"),
    ) -> dict[str, Any]:
        """The top k photos for each sketch (multipart files `sketch`, or JSON `sketches`), for
        the JSON `text`, or like each photo (`photo` / `photos`) or stored point (`like`), one entry
        in `queries` per query in the order given."""
        t0 = time.perf_counter()
        service.model(name)  # 404 before reading the body
        options = {"k": k, "filter": filter, "rerank": rerank, "prefetch": prefetch, "ef": ef}
        req = await read_search(request, name, options)
        if req.rerank is None:
            req.rerank = bundle_rerank(service.model(name))[0]
        answer = await search(req)
        metrics.observe_search(name, answer.embed_s, answer.search_s, answer.batch_size)
        if answer.error is not None:
            raise answer.error
        assert answer.results is not None
        base = str(request.scope.get("root_path", "")).rstrip("/") + f"/collections/{name}/photos/"
        queries = [{"results": [
            {**r.to_dict(), "thumbnail_url": f"{base}{r.id}/thumbnail", "photo_url": f"{base}{r.id}"} for r in res
        ]} for res in answer.results]
        return {"collection": name, "mode": req.mode, "rerank": req.rerank,
                "took_ms": round((time.perf_counter() - t0) * 1000, 2), "queries": queries}

    @app.post("/collections/{name}/ingest", tags=["collections"])
    async def ingest_route(
        request: Request, name: str, body: IngestBody,
        stream: bool = Query(False, description="answer NDJSON: a {\"progress\": ...} line per batch, then "
                                                "{\"report\": ...} or {\"error\": ..., \"status\": ...}; "
                                                "the run stops at a batch boundary if the client goes away"),
    ) -> Any:
        """Embed the photos under `paths` (files or folders on this machine) into a served
        collection, as `dmwan ingest` does; the report. Needs the address file's token
        (`X-Dmwan-Ingest-Token`), or the write key (`--ingest-key`), which reads only under the
        server's `--ingest-root` folders; the search key is refused. Searches go on meanwhile:
        the ingest runs beside them at a lower priority, and its writes take turns with them."""
        by = check_ingest_allowed(request.headers, settings.ingest_token, settings.ingest_key)
        service.model(name)  # 404 before the work
        check_ingest_request(service, body)
        if by == "key":
            await asyncio.to_thread(check_under_roots, body, settings.ingest_roots)
        if running:
            raise HTTPError(409, "an ingest is already running on this server: run this one when it ends")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        job = IngestJob((lambda p: loop.call_soon_threadsafe(queue.put_nowait, p)) if stream else None)
        running.add(job)
        future = loop.run_in_executor(ingester, run_ingest, service, name, body, executor, job)
        future.add_done_callback(lambda _: running.discard(job))
        if not stream:
            return await asyncio.shield(future)  # a plain ingest runs to its end, whoever waits
        return StreamingResponse(ingest_lines(request, future, queue, job), media_type="application/x-ndjson")

    async def photo_path(name: str, point_id: str) -> Path:
        payload = await in_worker(service.payload, name, point_id)  # the store, on its worker
        return await asyncio.to_thread(photo_file, payload, name, point_id)

    @app.get("/collections/{name}/photos/{point_id}", tags=["photos"], response_class=FileResponse)
    async def photo(name: str, point_id: str) -> FileResponse:
        """The stored photo of a point (the file it was ingested from)."""
        path = await photo_path(name, point_id)
        return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/collections/{name}/photos/{point_id}/thumbnail", tags=["photos"])
    async def thumbnail(
        name: str, point_id: str,
        size: int = Query(256, ge=THUMBNAIL_SIZES[0], le=THUMBNAIL_SIZES[1], description="longest side, pixels"),
    ) -> Response:
        """A JPEG thumbnail of a point's photo."""
        path = await photo_path(name, point_id)
        data = await asyncio.to_thread(thumbnails.get, path, size)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    app.add_middleware(Guard, metrics=metrics, api_key=settings.api_key, ingest_key=settings.ingest_key,
                       max_body=int(settings.max_upload_mb * 1_000_000))
    if settings.cors_origins:  # outermost, so that even a 401 carries the CORS headers
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app

