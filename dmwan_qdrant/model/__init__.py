"""The DMWAN model: config and presets, towers, weighting, losses, checkpoints."""

from .card import card_of, write_card
from .checkpoint import load_model, model_fingerprint, read_bundle_record, save_model
from .config import ModelConfig, get_preset, list_presets
from .dmwan import DMWAN, Embeddings
from .factory import create_model
from .pretrained import create_bundle
from .losses import semantic_loss, weighted_quadruplet_loss
from .weighting import AlignmentWeighting, LocalAggregation, maxsim

__all__ = [
    "DMWAN",
    "AlignmentWeighting",
    "Embeddings",
    "LocalAggregation",
    "ModelConfig",
    "card_of",
    "create_bundle",
    "create_model",
    "get_preset",
    "list_presets",
    "load_model",
    "maxsim",
    "model_fingerprint",
    "read_bundle_record",
    "save_model",
    "semantic_loss",
    "weighted_quadruplet_loss",
    "write_card",
]
