"""`ServerStore` (a Qdrant server or cluster) and `MemoryStore` (in-process reference)."""

from __future__ import annotations

import math
import time

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from dmwan_qdrant.errors import StoreError, UsageError
from dmwan_qdrant.store.client import ClientStore
from dmwan_qdrant.store.retry import RetryPolicy


class ServerStore(ClientStore):
    """A Qdrant server through its REST API (qdrant-client), with bounded retries.

    Args:
        url: server URL, e.g. ``http://localhost:6333`` or ``https://xyz.cloud.qdrant.io:6333``;
            the scheme decides TLS.
        api_key: sent as the ``api-key`` header (over plain http qdrant-client warns).
        timeout: seconds per request; qdrant-client rounds it up to whole seconds.
        retries: extra attempts after a connection error, a timeout, a 429 or a 5xx.
        backoff: first wait between attempts in seconds, doubled each time (a 429's
            ``Retry-After`` replaces it).
        batch_size: points per upsert request (256 points of 512 + 16x128 floats are ~6 MB of
            JSON, well under the server's 32 MB default request limit).
        optimize_timeout: how long `optimize` waits for the server to finish indexing.

    Raises (on any call):
        ServerUnavailableError: unreachable, credentials refused, or failing after the retries.
    """

    backend = "server"
    manifest_ttl = 1.0

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        batch_size: int = 256,
        optimize_timeout: float = 600.0,
    ) -> None:
        if not url or ("://" in url and not url.startswith(("http://", "https://"))):
            raise UsageError(
                f"invalid Qdrant URL {url!r}: use http://host:port or https://host:port"
            )
        self.url = url
        self.api_key = api_key or None
        self.optimize_timeout = optimize_timeout
        try:
            client = QdrantClient(
                url=url,
                api_key=api_key or None,
                timeout=max(1, math.ceil(timeout)),
                # The compatibility check is an extra request at construction time whose failure
                # would only warn; the first real call reports an unreachable server properly.
                check_compatibility=False,
            )
        except ValueError as e:
            raise UsageError(f"invalid Qdrant URL {url!r}: {e}") from None
        super().__init__(
            client,
            where=url,
            policy=RetryPolicy(retries=max(0, int(retries)), backoff=max(0.0, float(backoff))),
            timeout=max(1, math.ceil(timeout)),
            payload_indexes=True,
            batch_size=batch_size,
        )

    def optimize(self, name: str) -> None:
        """Ask the server to run its optimizers now, and wait until the collection is green.

        A PATCH with an empty optimizer config is Qdrant's way to start pending optimizations
        (status ``grey``). The server indexes in the background; the collection stays
        searchable meanwhile.
        """
        self._manifest(name)
        self._call(
            name,
            "starting the optimizers",
            lambda: self._client.update_collection(
                name, optimizers_config=qm.OptimizersConfigDiff()
            ),
        )
        deadline = time.monotonic() + self.optimize_timeout
        while True:
            status = self._info(name).status
            if status == qm.CollectionStatus.GREEN:
                return
            if status == qm.CollectionStatus.RED:
                raise StoreError(
                    f"Qdrant at {self.url} reports collection '{name}' as failed (red)"
                )
            if time.monotonic() > deadline:
                raise StoreError(
                    f"collection '{name}' is still being optimized after "
                    f"{self.optimize_timeout:g} s; the server goes on in the background"
                )
            time.sleep(1.0)

    def __repr__(self) -> str:
        return f"ServerStore({self.url!r})"


class MemoryStore(ClientStore):
    """qdrant-client's in-process ``:memory:`` mode: brute force in numpy, nothing on disk.

    The reference backend of the contract tests; slow beyond ~10k points (it scores every point
    on each query, even for the re-rank).
    """

    backend = "memory"
    brute_force = True

    def __init__(self, batch_size: int = 1024) -> None:
        super().__init__(
            QdrantClient(location=":memory:"),
            where=":memory:",
            payload_indexes=False,
            batch_size=batch_size,
        )

    def _index_state(self, points: int, indexed: int) -> str:
        return "none"

    def __repr__(self) -> str:
        return "MemoryStore()"
