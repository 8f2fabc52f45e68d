"""Retries for calls to a Qdrant server, and the one-line errors when they run out.

qdrant-client retries nothing on ordinary calls: a 503 raises `UnexpectedResponse`, a 429 with a
``Retry-After`` header raises `ResourceExhaustedResponse`, a refused connection or a timeout
raises `ResponseHandlingException` around the httpx error. `call_with_retries` retries exactly
these transient failures, a bounded number of times, with exponential backoff (or the server's
``Retry-After``), and turns what is left into `ServerUnavailableError`. Everything else
(400, 401/403, 404, 409) is raised at once for the caller to translate: repeating it cannot help.

Every operation the store sends is idempotent (upserts by id, deletes by id, reads), so repeating
a request whose answer was lost is safe.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from dmwan_qdrant.errors import ServerUnavailableError

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failing server call.

    Attributes:
        retries: extra attempts after the first (0 = no retry).
        backoff: first wait in seconds; doubles each attempt, up to ``max_backoff``, with a
            random factor in [0.5, 1] so that many clients do not retry in lockstep.
        max_backoff: cap of one wait.
        max_retry_after: cap of a server's ``Retry-After``, so a misconfigured server cannot
            stall a command for hours.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (0-based)."""
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * random.uniform(0.5, 1.0)


def status_of(exc: BaseException) -> int | None:
    """HTTP status of a qdrant-client error, where it has one."""
    if isinstance(exc, ResourceExhaustedResponse):
        return 429
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code
    return None


def server_message(exc: UnexpectedResponse) -> str:
    """The server's own error text (``status.error`` in Qdrant's JSON), on one line."""
    try:
        text = str(exc.structured()["status"]["error"])
    except Exception:  # not JSON, or another shape: fall back to the raw body
        text = exc.content.decode(errors="replace")[:200] or (exc.reason_phrase or "")
    return " ".join(text.split())


def transport_reason(exc: ResponseHandlingException, timeout: float | None) -> str | None:
    """Why a request got no answer, or None if the failure is not a transport one."""
    src = exc.source
    if isinstance(src, httpx.TimeoutException):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(src, httpx.ConnectError):
        text = str(src).lower()
        if "ssl" in text or "certificate" in text:
            return f"TLS failed ({_one_line(src)})"
        if "refused" in text:
            return "connection refused"
        if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
            return "unknown host"
        return "cannot connect" + (f" ({_one_line(src)})" if str(src) else "")
    if isinstance(src, (httpx.TransportError, OSError)):
        return f"connection failed ({type(src).__name__}: {_one_line(src)})"
    return None


def auth_error(url: str, status: int) -> ServerUnavailableError:
    """The error for credentials the server refused."""
    return ServerUnavailableError(
        f"Qdrant server at {url} refused the credentials (HTTP {status}): "
        "check the API key (--api-key or QDRANT_API_KEY)"
    )


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    url: str,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn``, retrying transient server failures as ``policy`` says.

    Raises:
        ServerUnavailableError: unreachable, timed out, auth refused, or still failing after
            the last retry; the message is one line and names ``url``.
        UnexpectedResponse: other HTTP errors (4xx), for the caller to translate.
    """
    attempts = policy.retries + 1
    for attempt in range(attempts):
        try:
            return fn()
        except ResourceExhaustedResponse as e:
            wait = min(float(e.retry_after_s), policy.max_retry_after)
            failure = "keeps rate-limiting requests (HTTP 429)"
        except UnexpectedResponse as e:
            if e.status_code in AUTH_STATUSES:
                raise auth_error(url, e.status_code) from None
            if e.status_code not in RETRY_STATUSES:
                raise
            wait = policy.delay(attempt)
            failure = f"keeps failing with status {e.status_code}"
        except ResponseHandlingException as e:
            reason = transport_reason(e, timeout)
            if reason is None:  # an answer that does not parse: a proxy, or not Qdrant at all
                raise ServerUnavailableError(
                    f"Qdrant server at {url} sent an answer that is not Qdrant's: "
                    f"{_one_line(e.source)}"
                ) from None
            if reason.startswith("TLS"):  # a wrong scheme or certificate: repeating cannot help
                raise ServerUnavailableError(
                    f"Qdrant server at {url} is unreachable: {reason}"
                ) from None
            wait = policy.delay(attempt)
            failure = (
                f"is unreachable: {reason}" if "within" not in reason else f"is too slow: {reason}"
            )
        except QdrantException as e:
            # qdrant-client raises this for a 429 whose Retry-After is not a number of seconds.
            if "Retry-After" not in str(e):
                raise ServerUnavailableError(f"Qdrant server at {url}: {_one_line(e)}") from None
            wait = policy.delay(attempt)
            failure = "keeps rate-limiting requests (HTTP 429)"
        if attempt + 1 < attempts:
            sleep(wait)
    tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
    raise ServerUnavailableError(f"Qdrant server at {url} {failure} ({tries})")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__
