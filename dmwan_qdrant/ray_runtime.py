"""Starting Ray for this project's jobs: a quiet local instance, or a cluster's address."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "RAY_DEDUP_LOGS": "1",
}
"""Environment defaults that silence Ray's usage-stats prompt and duplicated lines."""


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to the cluster at ``address`` (or ``$RAY_ADDRESS``), else start a local instance.

    Does nothing when Ray is already initialised in this process. Returns whether this call
    initialised it (the caller then owns the `ray.shutdown`).

    A local instance keeps its files under ``/tmp/dmwan-ray-<pid>`` (socket paths must be short)
    and starts its workers at normal priority: Ray's default (nice 15) lets every other process
    preempt them, 0.85 of a plain loop's speed on 2 cores against 0.94 at nice 0
    (benchmarks/ray_overhead.py). ``num_cpus`` defaults to the machine's cores.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return False
    # A local cluster's start-up notices (token auth on, "Started a local Ray instance") say
    # nothing a run needs; warnings and errors of everything else still show.
    for name in ("ray._private.authentication.authentication_token_setup", "ray._private.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {"log_to_driver": False}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_worker_niceness", "0")
        temp = Path("/tmp") / f"dmwan-ray-{os.getpid()}"
        kwargs.update(include_dashboard=False, _temp_dir=str(temp), num_cpus=num_cpus or os.cpu_count() or 1)
    else:
        kwargs["address"] = address or os.environ["RAY_ADDRESS"]
    ray.init(**kwargs)
    return True
