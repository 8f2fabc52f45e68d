"""The ASGI layer around every route: API-key check, upload limit, metrics, last-resort errors.

Pure ASGI (no per-request task or body copy as in Starlette's ``BaseHTTPMiddleware``): a search
on a warm server takes milliseconds, and the wrapper must not add to them.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

from dmwan_qdrant.server.http_errors import BodyTooLargeError, error_response
from dmwan_qdrant.server.metrics import ServerMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

#: Paths answered without an API key: the health checks, and the page and its static files,
#: which hold no data (the page asks for the key and sends it with every API call).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/favicon.ico"})
OPEN_PREFIXES = ("/static/",)
#: The ingest route, which checks its own right (write, not search).
INGEST_PATH = re.compile(r"/collections/[^/]+/ingest")


class Guard:
    """Wraps an ASGI app.

    Args:
        app: the FastAPI app.
        metrics: where requests are counted.
        api_key: the bearer token every other route requires, or None for none.
        max_body: largest request body accepted, in bytes (413 beyond).
        ingest_key: the write key, which searches too; the ingest route itself checks who
            may write (`dmwan_qdrant.server.ingest`), so the guard lets it through.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, api_key: str | None, max_body: int,
                 ingest_key: str | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.api_key = api_key
        self.keys = [k for k in (api_key, ingest_key) if k]
        self.max_body = max_body

    def _authorized(self, scope: Scope) -> bool:
        path = _app_path(scope)
        if self.api_key is None or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return True
        if scope["method"] == "OPTIONS":  # CORS pre-flight carries no credentials
            return True
        if scope["method"] == "POST" and INGEST_PATH.fullmatch(path):
            return True  # the route lets in writers only, and the search key is none
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                token = bearer_token(value.decode("latin-1"))
                return token is not None and any(secrets.compare_digest(token, k) for k in self.keys)
        return False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        started: list[int] = []

        async def send_tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(message["status"])
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLargeError(self.max_body)
            return message

        try:
            if not self._authorized(scope):
                response = JSONResponse(
                    {"error": "missing or wrong API key: send the header Authorization: Bearer <key>"},
                    status_code=401, headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send_tracked)
                return
            length = _content_length(scope)
            if length is not None and length > self.max_body:
                raise BodyTooLargeError(self.max_body)
            await self.app(scope, receive_limited, send_tracked)
        except Exception as exc:  # noqa: BLE001 - the last resort: one JSON line, never a traceback page
            if started:
                raise  # the answer is half sent: nothing better to do than drop the connection
            await error_response(exc)(scope, receive, send_tracked)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/static" if _app_path(scope).startswith("/static/") else "other")
            self.metrics.observe_request(scope["method"], template, started[0] if started else 500,
                                         time.perf_counter() - t0)


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header's value, else None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _app_path(scope: Scope) -> str:
    """The path inside the app: without the prefix it is mounted under (``root_path``, as behind
    a Ray Serve ``route_prefix``), which Starlette leaves in ``scope["path"]``."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path
