"""Errors as HTTP answers: a status code and a one-line JSON body ``{"error": "..."}``.

The library's errors (`DmwanError`) map to 4xx for what the client got wrong and 503 for a
store that does not answer; anything else is a 500 whose body names the exception in one line,
with the traceback in the server's log only.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from dmwan_qdrant.errors import (
    CollectionNotFoundError,
    DmwanError,
    ImageError,
    ImageTooLargeError,
    ServerUnavailableError,
    StoreDamagedError,
    StoreError,
    UsageError,
)

log = logging.getLogger("dmwan_qdrant.server")


class HTTPError(DmwanError):
    """An error with its own HTTP status (raised by the routes)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyTooLargeError(HTTPError):
    """A request body over the upload limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the upload is over the limit of {limit / 1e6:g} MB (see --max-upload-mb)")


def one_line(text: str) -> str:
    """``text`` on one line (newlines and runs of spaces folded)."""
    return " ".join(str(text).split())


def status_of(exc: BaseException) -> int:
    """The HTTP status for an exception raised while answering."""
    if isinstance(exc, HTTPError):
        return exc.status
    if isinstance(exc, ImageTooLargeError):
        return 413
    if isinstance(exc, ImageError):
        return 415
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, CollectionNotFoundError):
        return 404
    if isinstance(exc, (ServerUnavailableError, StoreDamagedError, StoreError)):
        return 503
    if isinstance(exc, DmwanError):
        return 400
    return 500


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON answer for ``exc``; unexpected exceptions are logged with their traceback."""
    status = status_of(exc)
    if status == 500:
        log.error("unexpected error", exc_info=exc)
        message = f"internal error: {type(exc).__name__}: {exc}"
    else:
        message = str(exc)
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler for every error."""
    return error_response(exc)
