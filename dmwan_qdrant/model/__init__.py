"""The DMWAN model: config and presets, towers, weighting, losses, checkpoints."""

from .checkpoint import load_model, model_fingerprint, save_model
from .config import ModelConfig, get_preset, list_presets
from .dmwan import DMWAN, Embeddings
from .factory import create_model
from .losses import semantic_loss, weighted_quadruplet_loss
from .weighting import AlignmentWeighting, LocalAggregation, maxsim

__all__ = [
    "DMWAN",
    "AlignmentWeighting",
    "Embeddings",
    "LocalAggregation",
    "ModelConfig",
    "create_model",
    "get_preset",
    "list_presets",
    "load_model",
    "maxsim",
    "model_fingerprint",
    "save_model",
    "semantic_loss",
    "weighted_quadruplet_loss",
]
