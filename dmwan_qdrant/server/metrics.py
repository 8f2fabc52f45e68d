"""Prometheus metrics of a server: requests, latency, embed and search time, batch sizes.

Each app has a registry of its own (two apps in one process, as in tests, never share counts).
Routes are labelled by their template (``/collections/{name}/search``), never by the raw path, so
the label set stays small whatever clients send.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: N811

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

disable_created_metrics()  # the *_created series double the output and no dashboard reads them

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServerMetrics:
    """The counters and histograms of one server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dmwan_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "dmwan_http_request_seconds", "Time to answer an HTTP request", ["route"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.embed = Histogram(
            "dmwan_embed_seconds", "Encoder forward pass of a batch of sketches", ["collection"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.search = Histogram(
            "dmwan_search_seconds", "Store search of one request", ["collection"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch = Histogram(
            "dmwan_batch_size", "Requests embedded in one forward pass", buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_search(self, collection: str, embed_s: float, search_s: float, batch_size: int) -> None:
        """Record the work of one search request."""
        if embed_s:
            self.embed.labels(collection).observe(embed_s)
            self.batch.observe(batch_size)
        self.search.labels(collection).observe(search_s)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
