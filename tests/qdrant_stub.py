"""A stand-in Qdrant server for tests: just enough of the REST API, with fault injection.

No Qdrant server can run on the test machines, so this stub serves the REST calls that
`ServerStore` makes, on 127.0.0.1 at a random port, from a thread. Requests are parsed with
qdrant-client's own REST models and executed on a `QdrantClient(":memory:")`, so a `ServerStore`
against the stub goes through qdrant-client's real remote path (serialisation, headers, status
handling) and answers like the reference backend.

Fault injection: `QdrantStub.faults` is a queue; each request pops one fault, if any:
``("status", 503)``, ``("status", 429, "1")`` (with a Retry-After header), ``("delay", 2.0)``
(answer late). `api_key` set makes every request without that ``api-key`` header get a 401.
`requests` logs ``(method, path, headers)`` of every request, to count attempts.

Aliases behave as on a server: ``POST /collections/aliases`` applies its actions atomically,
``GET /aliases`` and ``GET /collections/{name}/aliases`` list them, and every collection route
takes an alias in place of the collection's name (the local mode resolves them), except
``DELETE /collections/{name}``, which (as Qdrant's) deletes only a collection of that name.
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel
from qdrant_client import QdrantClient
from qdrant_client.http import models as rm


class StubError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _dump(x: Any) -> Any:
    if isinstance(x, BaseModel):
        return x.model_dump(mode="json")
    if isinstance(x, list):
        return [_dump(i) for i in x]
    return x


def _ok() -> rm.UpdateResult:
    return rm.UpdateResult(operation_id=0, status=rm.UpdateStatus.COMPLETED)


class QdrantStub:
    """The stub server. Use as a context manager, or call `start` and `stop`."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.faults: deque[tuple[Any, ...]] = deque()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.backend = QdrantClient(location=":memory:")
        self._lock = threading.Lock()  # the local mode is not thread-safe
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> QdrantStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.backend.close()

    def __enter__(self) -> QdrantStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- routing -------------------------------------------------------------------------------

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        b = self.backend
        return [
            # Aliases first: "aliases" would otherwise read as a collection name.
            (
                "POST",
                r"/collections/aliases",
                lambda body: b.update_collection_aliases(
                    change_aliases_operations=rm.ChangeAliasesOperation.model_validate(body).actions
                ),
            ),
            ("GET", r"/aliases", lambda body: b.get_aliases()),
            (
                "GET",
                r"/collections/(?P<n>[^/]+)/aliases",
                lambda body, n: b.get_collection_aliases(n),
            ),
            (
                "GET",
                r"/collections",
                lambda body: rm.CollectionsResponse(
                    collections=[
                        rm.CollectionDescription(name=c.name)
                        for c in b.get_collections().collections
                    ]
                ),
            ),
            (
                "GET",
                r"/collections/(?P<n>[^/]+)/exists",
                lambda body, n: rm.CollectionExistence(exists=b.collection_exists(n)),
            ),
            ("GET", r"/collections/(?P<n>[^/]+)", lambda body, n: b.get_collection(n)),
            ("PUT", r"/collections/(?P<n>[^/]+)", self._create),
            ("DELETE", r"/collections/(?P<n>[^/]+)", lambda body, n: b.delete_collection(n)),
            ("PATCH", r"/collections/(?P<n>[^/]+)", lambda body, n: (b.get_collection(n), True)[1]),
            (
                "PUT",
                r"/collections/(?P<n>[^/]+)/index",
                lambda body, n: (b.get_collection(n), _ok())[1],
            ),
            (
                "PUT",
                r"/collections/(?P<n>[^/]+)/points",
                lambda body, n: b.upsert(n, rm.PointsList.model_validate(body).points),
            ),
            ("POST", r"/collections/(?P<n>[^/]+)/points", self._retrieve),
            ("POST", r"/collections/(?P<n>[^/]+)/points/scroll", self._scroll),
            (
                "POST",
                r"/collections/(?P<n>[^/]+)/points/count",
                lambda body, n: b.count(
                    n,
                    count_filter=rm.CountRequest.model_validate(body).filter,
                    exact=bool(body.get("exact", True)),
                ),
            ),
            (
                "POST",
                r"/collections/(?P<n>[^/]+)/points/delete",
                lambda body, n: b.delete(n, rm.PointIdsList.model_validate(body)),
            ),
            (
                "POST",
                r"/collections/(?P<n>[^/]+)/points/query",
                lambda body, n: self._query(n, rm.QueryRequest.model_validate(body)),
            ),
            (
                "POST",
                r"/collections/(?P<n>[^/]+)/points/query/batch",
                lambda body, n: [
                    self._query(n, q) for q in rm.QueryRequestBatch.model_validate(body).searches
                ],
            ),
        ]

    def _create(self, body: dict[str, Any], n: str) -> bool:
        req = rm.CreateCollection.model_validate(body)
        if self.backend.collection_exists(n):
            raise StubError(409, f"Wrong input: Collection `{n}` already exists!")
        # HNSW and quantization settings pass through; the local mode accepts and ignores them.
        return self.backend.create_collection(
            n,
            vectors_config=req.vectors,
            hnsw_config=req.hnsw_config,
            quantization_config=req.quantization_config,
            metadata=req.metadata,
        )

    def _retrieve(self, body: dict[str, Any], n: str) -> list[rm.Record]:
        req = rm.PointRequest.model_validate(body)
        return self.backend.retrieve(
            n, req.ids, with_payload=req.with_payload, with_vectors=req.with_vector
        )

    def _scroll(self, body: dict[str, Any], n: str) -> rm.ScrollResult:
        req = rm.ScrollRequest.model_validate(body)
        points, nxt = self.backend.scroll(
            n,
            limit=req.limit or 10,
            offset=req.offset,
            with_payload=req.with_payload,
            with_vectors=req.with_vector,
        )
        return rm.ScrollResult(points=points, next_page_offset=nxt)

    def _query(self, n: str, q: rm.QueryRequest) -> rm.QueryResponse:
        return self.backend.query_points(
            n,
            query=q.query,
            using=q.using,
            prefetch=q.prefetch,
            query_filter=q.filter,
            search_params=q.params,
            limit=q.limit or 10,
            with_payload=q.with_payload if q.with_payload is not None else False,
        )

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: ``(status, extra headers, body)``."""
        with self._lock:
            self.requests.append((method, path, headers))
            fault = self.faults.popleft() if self.faults else None
        if fault and fault[0] == "delay":
            time.sleep(fault[1])
        elif fault and fault[0] == "status":
            extra = {"Retry-After": fault[2]} if len(fault) > 2 else {}
            return fault[1], extra, _envelope_error(f"injected {fault[1]}")
        if self.api_key is not None and headers.get("api-key") != self.api_key:
            return (
                401,
                {},
                _envelope_error("Must provide an API key or an Authorization bearer token"),
            )
        route = path.split("?", 1)[0]
        for m, pattern, fn in self._routes():
            match = re.fullmatch(pattern, route)
            if m == method and match:
                try:
                    body = json.loads(raw) if raw else {}
                    with self._lock, warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        result = fn(body, **match.groupdict())
                except StubError as e:
                    return e.status, {}, _envelope_error(str(e))
                except ValueError as e:
                    status = 404 if "not found" in str(e) else 400
                    return (
                        status,
                        {},
                        _envelope_error(f"Not found: {e}" if status == 404 else str(e)),
                    )
                payload = {"result": _dump(result), "status": "ok", "time": 0.0}
                return 200, {}, json.dumps(payload).encode()
        return 404, {}, _envelope_error(f"no route {method} {route}")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, body = stub.handle(self.command, self.path, headers, raw)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        return Handler


def _envelope_error(message: str) -> bytes:
    return json.dumps({"status": {"error": message}, "time": 0.0}).encode()
