"""The DMWAN model: config and presets, towers, weighting, losses, checkpoints.

The names below load on first use: `ModelConfig`, the presets and a bundle's record come without
torch (a search-only install reads bundles too), the network and its checkpoints with it.
"""

from __future__ import annotations

from dmwan_qdrant.lazy import lazy_attributes

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


__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
