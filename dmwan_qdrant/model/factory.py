"""One factory: a DMWAN model from a preset name (or config) plus a weights source."""

from __future__ import annotations

from typing import Any

from .config import ModelConfig, get_preset
from .dmwan import DMWAN


#: The ``pretrained`` word for random initialisation even where a preset has default weights.
RANDOM = "none"


def resolve_pretrained(preset: str | ModelConfig, pretrained: str | None) -> str | None:
    """The weights source a new bundle or training run starts from: ``pretrained`` as given,
    the preset's ``default_pretrained`` when it is None, and None (random) for ``"none"``."""
    if pretrained is None:
        config = preset if isinstance(preset, ModelConfig) else get_preset(preset)
        pretrained = config.default_pretrained
    return None if pretrained == RANDOM else pretrained


def create_model(
    preset: str | ModelConfig,
    pretrained: str | None = None,
    text_pretrained: str | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
) -> DMWAN:
    """Build a DMWAN model.

    Args:
        preset: a preset name (``"tiny"``, ``"vit_b16"``, ...), a preset JSON path, or a config.
        pretrained: backbone weights: an open_clip tag such as ``"openai"`` (downloads), a local
            weights file, ``"hub"`` for a timm backbone, or None for random initialisation.
        text_pretrained: CLIP weights for the text tower when the backbone is timm.
        overrides: config fields to replace (ablation switches, sizes).
        seed: seeds the random initialisation, so the same call builds the same model.

    Raises:
        ModelError: unknown preset or bad config. WeightsUnavailableError: weights not reachable.
    """
    import torch

    config = preset if isinstance(preset, ModelConfig) else get_preset(preset)
    config = config.with_overrides(overrides)
    if seed is not None:
        torch.manual_seed(seed)
    return DMWAN(config, pretrained=pretrained, text_pretrained=text_pretrained)
