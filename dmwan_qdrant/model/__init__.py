"""The DMWAN model: config and presets, towers, weighting, losses, checkpoints.

The names below load on first use: `ModelConfig`, the presets and a bundle's record come without
torch (a search-only install reads bundles too), the network and its checkpoints with it.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "card_of": "card",
    "write_card": "card",
    "load_model": "checkpoint",
    "model_fingerprint": "checkpoint",
    "save_model": "checkpoint",
    "read_bundle_record": "bundle",
    "ModelConfig": "config",
    "get_preset": "config",
    "list_presets": "config",
    "DMWAN": "dmwan",
    "Embeddings": "dmwan",
    "create_model": "factory",
    "create_bundle": "pretrained",
    "semantic_loss": "losses",
    "weighted_quadruplet_loss": "losses",
    "AlignmentWeighting": "weighting",
    "LocalAggregation": "weighting",
    "maxsim": "weighting",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
