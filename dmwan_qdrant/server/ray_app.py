"""The search server on Ray Serve: the app of `dmwan serve` (`create_app` over a `SearchService`)
in Ray Serve replicas, with ``@serve.batch`` in place of the micro-batcher.

Run it with Ray's CLI (a local Ray starts by itself; the proxy listens on 127.0.0.1:8000)::

    serve run dmwan_qdrant.server.ray_app:build_app collections=pics store=/path/to/store
    serve run dmwan_qdrant.server.ray_app:build_app collections=pics url=http://qdrant:6333 \\
        num_replicas=2 num_gpus=1 max_batch_size=16

or from Python (``serve.run(build_app({"collections": "pics", "store": "/path"}))``), or on
Kubernetes through a KubeRay RayService (``deploy/rayservice.yaml``).

Each replica opens the store read-only, loads the encoder of every served collection and answers
on its own. An embedded store folder (``store=``) can be opened by ONE process only: it serves
one replica at most, so several replicas (``num_replicas`` > 1, or ``autoscaling`` up to more
than one) need a Qdrant server (``url=``), which they all share.

Importing this module loads neither torch nor the models and opens no store: `parse_options`
and `build_app` run anywhere (the Serve controller, a test); the replica's ``__init__`` does the
heavy part. So a relative ``store`` is resolved where the builder runs: the shell of
``serve run IMPORT_PATH``, but the cluster for a config file; give absolute paths there.

Beside `dmwan serve`: the API key is better left to ``$DMWAN_API_KEY`` on the replicas (an
``api_key`` option shows in the Serve config), and a replica leaves no ``.server.json`` beside an
embedded store, so `dmwan query` on that store says it is in use instead of searching through it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve import Application

from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.runtime import RUNTIMES
from dmwan_qdrant.settings import DEFAULT_MAX_BATCH, DEFAULT_MAX_UPLOAD_MB, DEFAULT_WAIT_S, ENV_DMWAN_API_KEY

if TYPE_CHECKING:  # the replica imports these (and torch with them) in __init__
    from fastapi import FastAPI

    from dmwan_qdrant.server.app import BatchSearch, ServeSettings
    from dmwan_qdrant.search.request import SearchRequest
    from dmwan_qdrant.server.service import SearchAnswer, SearchService

__all__ = ["OPTIONS", "RayServeOptions", "SearchDeployment", "build_app", "parse_options"]

log = logging.getLogger("ray.serve")

OPTIONS = (
    "collections", "store", "url", "qdrant_api_key", "model", "api_key", "cors_origins", "max_upload_mb",
    "num_replicas", "autoscaling", "num_cpus", "num_gpus", "max_batch_size", "batch_wait_timeout_s",
    "max_ongoing_requests", "device", "runtime",
)
"""The options `build_app` takes."""


@dataclass(frozen=True)
class RayServeOptions:
    """What `build_app` deploys, checked (see `parse_options` for the accepted forms).

    Attributes:
        collections: the collections to serve.
        store: an embedded store folder (absolute), or None with ``url``.
        url: a Qdrant server's URL, or None with ``store``.
        qdrant_api_key: the Qdrant server's key (default: the replica's ``$QDRANT_API_KEY``).
        model: a model bundle for the single served collection (default: the recorded one).
        api_key: the bearer key the API requires (default: the replica's ``$DMWAN_API_KEY``).
        cors_origins: origins allowed to call the API from a browser.
        max_upload_mb: largest request body, in megabytes.
        num_replicas: fixed replica count (None with ``autoscaling``).
        autoscaling: Ray Serve's ``autoscaling_config`` (min_replicas, max_replicas, ...).
        num_cpus: CPUs per replica (default: Ray's, 1).
        num_gpus: GPUs per replica (default: none).
        max_batch_size: most requests per forward pass (``@serve.batch``).
        batch_wait_timeout_s: how long a request waits to share a forward pass.
        max_ongoing_requests: requests a replica takes at once (at least ``max_batch_size``).
        device: device for the encoders (default: CUDA when the replica sees a GPU).
        runtime: ``auto``, ``torch`` or ``onnx`` (`dmwan_qdrant.encoder.load_bundle`).
    """

    collections: tuple[str, ...]
    store: str | None = None
    url: str | None = None
    qdrant_api_key: str | None = None
    model: str | None = None
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    num_replicas: int | None = 1
    autoscaling: dict[str, Any] | None = None
    num_cpus: float | None = None
    num_gpus: float | None = None
    max_batch_size: int = DEFAULT_MAX_BATCH
    batch_wait_timeout_s: float = DEFAULT_WAIT_S
    max_ongoing_requests: int = 32
    device: str | None = None
    runtime: str = "auto"

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of `Deployment.options`: replicas, actor resources, concurrency."""
        opts: dict[str, Any] = {"max_ongoing_requests": self.max_ongoing_requests}
        if self.autoscaling is not None:
            opts["autoscaling_config"] = dict(self.autoscaling)
        else:
            opts["num_replicas"] = self.num_replicas
        actor = {k: v for k, v in (("num_cpus", self.num_cpus), ("num_gpus", self.num_gpus)) if v is not None}
        if actor:
            opts["ray_actor_options"] = actor
        return opts

    def settings(self) -> ServeSettings:
        """The app's `ServeSettings` (imports the app: call it in the replica)."""
        from dmwan_qdrant.server.app import ServeSettings

        key = self.api_key or os.environ.get(ENV_DMWAN_API_KEY) or None
        return ServeSettings(api_key=key, cors_origins=self.cors_origins, max_upload_mb=self.max_upload_mb,
                             max_batch=self.max_batch_size, batch_wait_s=self.batch_wait_timeout_s)


# ---------------------------------------------------------------- option parsing (pure)


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{name} must be a string, got {value!r}")
    return str(value).strip() or None


def _names(name: str, value: Any) -> tuple[str, ...]:
    """``"a,b"`` or ``["a", "b"]`` as ``("a", "b")`` (blanks dropped, order kept, no repeats)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise UsageError(f"{name} must be a comma-separated string or a list of strings, got {value!r}")
    return tuple(dict.fromkeys(v.strip() for v in items if v.strip()))


def _number(name: str, value: Any, kind: type, lo: float, default: Any) -> Any:
    """``value`` (a number, or its text as `serve run` passes it) as ``kind``, at least ``lo``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    what = "an integer" if kind is int else "a number"
    if isinstance(value, bool):
        raise UsageError(f"{name} must be {what}, got {value!r}")
    try:
        number = float(value)
        if not math.isfinite(number) or (kind is int and number != int(number)):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{name} must be {what}, got {value!r}") from None
    result = kind(number)
    if result < lo:
        raise UsageError(f"{name} must be at least {lo:g}, got {value!r}")
    return result


def _autoscaling(value: Any) -> dict[str, Any] | None:
    """``"MIN-MAX"`` or a dict of Ray's ``autoscaling_config`` fields, checked by Ray's model."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        lo, sep, hi = value.partition("-")
        if not sep:
            raise UsageError(f"autoscaling must be MIN-MAX replicas (e.g. 1-4) or a dict, got {value!r}")
        config: dict[str, Any] = {"min_replicas": lo, "max_replicas": hi}
    elif isinstance(value, Mapping):
        config = dict(value)
    else:
        raise UsageError(f"autoscaling must be MIN-MAX replicas (e.g. 1-4) or a dict, got {value!r}")
    config["min_replicas"] = _number("autoscaling min_replicas", config.get("min_replicas"), int, 0, 1)
    config["max_replicas"] = _number("autoscaling max_replicas", config.get("max_replicas"), int, 1, None)
    if config["max_replicas"] is None:
        raise UsageError("autoscaling needs max_replicas (e.g. autoscaling=1-4)")
    if config["min_replicas"] > config["max_replicas"]:
        raise UsageError(f"autoscaling: min_replicas {config['min_replicas']} is over "
                         f"max_replicas {config['max_replicas']}")
    from pydantic import ValidationError
    from ray.serve.config import AutoscalingConfig

    unknown = sorted(set(config) - set(AutoscalingConfig.model_fields))
    if unknown:
        fields = ", ".join(AutoscalingConfig.model_fields)
        raise UsageError(f"autoscaling: unknown field {unknown[0]!r} (fields: {fields})")
    try:
        AutoscalingConfig(**config)
    except (ValidationError, TypeError, ValueError) as e:
        errors = e.errors() if isinstance(e, ValidationError) else []
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg')}" if first else str(e)
        raise UsageError(" ".join(f"autoscaling: {message}".split())) from None
    return config


def parse_options(args: Mapping[str, Any]) -> RayServeOptions:
    """Check the options of `build_app` (strings from ``serve run k=v``, or YAML/Python values).

    Options: ``collections`` (comma-separated or a list, required); ``store`` (an embedded store
    folder) or ``url`` (a Qdrant server, with ``qdrant_api_key``); ``model`` (a bundle, one
    collection only); ``api_key``; ``cors_origins`` (comma-separated or a list);
    ``max_upload_mb``; ``num_replicas`` or ``autoscaling`` (``"MIN-MAX"`` or a dict of Ray's
    ``autoscaling_config``); ``num_cpus``, ``num_gpus`` (per replica); ``max_batch_size``,
    ``batch_wait_timeout_s`` (``@serve.batch``); ``max_ongoing_requests``; ``device``; ``runtime``
    (``auto``, ``torch`` or ``onnx``).

    Starts nothing and opens nothing.

    Raises:
        UsageError: an unknown option or a bad value, in one line.
    """
    if not isinstance(args, Mapping):
        raise UsageError(f"the options must be a dict of name: value, got {type(args).__name__}")
    unknown = sorted(set(args) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} (options: {', '.join(OPTIONS)})")
    collections = _names("collections", args.get("collections"))
    if not collections:
        raise UsageError("give the collections to serve: collections=NAME[,NAME...]")
    store, url = _text("store", args.get("store")), _text("url", args.get("url"))
    if store and url:
        raise UsageError("give either store=PATH (an embedded store) or url=URL (a Qdrant server), not both")
    if not store and not url:
        raise UsageError("give store=PATH (an embedded store folder) or url=http://HOST:6333 (a Qdrant server)")
    if url and not url.startswith(("http://", "https://")):
        raise UsageError(f"invalid Qdrant URL {url!r}: use http://host:port or https://host:port")
    qdrant_api_key = _text("qdrant_api_key", args.get("qdrant_api_key"))
    if qdrant_api_key and store:
        raise UsageError("qdrant_api_key goes with url, not with store")
    if store:  # replicas run in other working directories
        store = str(Path(store).expanduser().absolute())
    model = _text("model", args.get("model"))
    if model:
        if len(collections) > 1:
            raise UsageError("model goes with a single collection (each collection loads its own model)")
        if not model.startswith("hf-hub:"):  # a hub name is fetched by each replica into its cache
            model = str(Path(model).expanduser().absolute())

    autoscaling = _autoscaling(args.get("autoscaling"))
    num_replicas = _number("num_replicas", args.get("num_replicas"), int, 1, None)
    if autoscaling is not None and num_replicas is not None:
        raise UsageError("give num_replicas or autoscaling, not both")
    if autoscaling is None and num_replicas is None:
        num_replicas = 1
    most = autoscaling["max_replicas"] if autoscaling is not None else num_replicas
    if store and most > 1:
        raise UsageError(f"an embedded store opens in one process only: {most} replicas need a Qdrant server "
                         "(url=http://HOST:6333), or serve one replica")

    num_cpus = _number("num_cpus", args.get("num_cpus"), float, 0, None)
    num_gpus = _number("num_gpus", args.get("num_gpus"), float, 0, None)
    device = _text("device", args.get("device"))
    if device and device.startswith("cuda") and not num_gpus:
        raise UsageError(f"device={device} needs num_gpus (1, or 0.5 to share a GPU): without it Ray neither "
                         "reserves a GPU for a replica nor places it on a GPU node")
    max_batch_size = _number("max_batch_size", args.get("max_batch_size"), int, 1, DEFAULT_MAX_BATCH)
    wait = _number("batch_wait_timeout_s", args.get("batch_wait_timeout_s"), float, 0, DEFAULT_WAIT_S)
    ongoing = _number("max_ongoing_requests", args.get("max_ongoing_requests"), int, 1, max(32, 2 * max_batch_size))
    if ongoing < max_batch_size:
        raise UsageError(f"max_ongoing_requests ({ongoing}) must be at least max_batch_size ({max_batch_size}), "
                         "or batches never fill")
    runtime = _text("runtime", args.get("runtime")) or "auto"
    if runtime not in RUNTIMES:
        raise UsageError(f"runtime={runtime} is not one of {', '.join(RUNTIMES)}")
    return RayServeOptions(
        collections=collections, store=store, url=url, qdrant_api_key=qdrant_api_key, model=model,
        api_key=_text("api_key", args.get("api_key")), cors_origins=_names("cors_origins", args.get("cors_origins")),
        max_upload_mb=_number("max_upload_mb", args.get("max_upload_mb"), float, 0.01, DEFAULT_MAX_UPLOAD_MB),
        num_replicas=num_replicas, autoscaling=autoscaling, num_cpus=num_cpus, num_gpus=num_gpus,
        max_batch_size=max_batch_size, batch_wait_timeout_s=wait, max_ongoing_requests=ongoing, device=device,
        runtime=runtime,
    )


# ---------------------------------------------------------------- the deployment


@serve.deployment(name="dmwan-search")
@serve.ingress()  # late-bound: `__serve_build_asgi_app__` builds the app once the service is up
class SearchDeployment:
    """One replica: the store opened read-only, the encoders loaded, and `create_app`'s app.

    Searches reach `SearchService.search_batch` through ``@serve.batch`` (``max_batch_size``,
    ``batch_wait_timeout_s``), on the app's one worker thread like every other store call.

    Args:
        options: what to serve (see `parse_options`).
    """

    async def __init__(self, options: RayServeOptions) -> None:
        self.options = options
        self.search.set_max_batch_size(options.max_batch_size)
        self.search.set_batch_wait_timeout_s(options.batch_wait_timeout_s)
        self._executor: concurrent.futures.Executor | None = None
        # Off the replica's event loop: loading the encoders takes seconds.
        self.service: SearchService = await asyncio.to_thread(self._open, options)

    @staticmethod
    def _open(options: RayServeOptions) -> SearchService:
        from dmwan_qdrant.server.service import SearchService
        from dmwan_qdrant.store import open_store

        store = open_store(url=options.url, path=options.store, api_key=options.qdrant_api_key, read_only=True)
        notice = getattr(store, "notice", None)
        if notice:
            log.warning("dmwan: %s", notice)
        try:
            models = {options.collections[0]: options.model} if options.model else None
            service = SearchService(store, options.collections, models, options.device, options.runtime)
            service.open_encoders()  # before the replica reports ready
            return service
        except BaseException:
            store.close()
            raise

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The app Serve routes HTTP requests to (called once, after ``__init__``)."""
        from dmwan_qdrant.server.app import create_app

        return create_app(self.service, self.options.settings(), batch_search=self._batch_search)

    def _batch_search(self, service: SearchService, executor: concurrent.futures.Executor) -> BatchSearch:
        self._executor = executor
        return self.search

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH, batch_wait_timeout_s=DEFAULT_WAIT_S)
    async def search(self, requests: Sequence[SearchRequest]) -> list[SearchAnswer]:
        """Answer the requests that arrived together, in one `SearchService.search_batch` call on
        the app's worker thread. Called with one `SearchRequest`; Serve collects the list."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.service.search_batch, list(requests))


def build_app(args: dict[str, Any]) -> Application:
    """The Serve application for ``args`` (Ray's app-builder convention; see `parse_options`).

    Raises:
        UsageError: a bad option.
    """
    options = parse_options(args)
    return SearchDeployment.options(**options.deployment_options()).bind(options)
