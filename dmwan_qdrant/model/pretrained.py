"""Bundles of pretrained towers with no DMWAN training: zero-shot CLIP sketch retrieval.

``create_bundle("vit_b16", "clip-vit-b16", pretrained="openai")`` writes an ordinary bundle that
`dmwan ingest --model` takes: sketches and photos go through the same pretrained visual tower,
with no domain offset, and the global head passes its output through unchanged (the identity
where the sizes agree, an orthonormal projection where they do not, as for a timm ViT's 768
features into the 512 of the CLIP text space). It is the baseline a trained bundle must beat.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .card import new_card
from .checkpoint import save_model
from .dmwan import DMWAN
from .factory import create_model, resolve_pretrained


def _pass_through(model: DMWAN, seed: int) -> None:
    """Make the parts a pretrained tower lacks leave its features as they are."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if model.domain_embedding is not None:
            model.domain_embedding.weight.zero_()
        for head in (model.global_head, model.token_head):
            w = head.weight
            if w.shape[0] == w.shape[1]:
                w.copy_(torch.eye(w.shape[0]))
            else:
                q = torch.empty_like(w)
                torch.nn.init.orthogonal_(q, generator=generator)
                w.copy_(q)
            if head.bias is not None:
                head.bias.zero_()


def create_bundle(
    preset: str,
    output: str | Path,
    pretrained: str | None = None,
    text_pretrained: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a bundle of the ``preset``'s towers with ``pretrained`` weights, untrained.

    Args:
        preset: a preset name (`list_presets`) or a preset JSON file.
        output: the bundle folder to write (replaced atomically if it exists).
        pretrained: an open_clip tag ("openai", downloads once), "hub" for a timm backbone,
            "package" for the weights of an installed pip package (`efficientnet_lite0`), a local
            weights file, "none" for random weights, or None for the preset's default (random
            for the tiny and CLIP presets, "package" for `efficientnet_lite0`).
        text_pretrained: CLIP weights of the text tower when the backbone is timm.
        seed: seeds whatever is random (random towers, projections between sizes).

    Raises:
        ModelError: an unknown preset. WeightsUnavailableError: weights that cannot be read
            here, with how to pass a local file.
    """
    pretrained = resolve_pretrained(preset, pretrained)
    model = create_model(preset, pretrained, text_pretrained, seed=seed)
    _pass_through(model, seed)
    card = new_card(model.config.name, pretrained, text_pretrained)
    return save_model(model.eval(), output, metadata={"card": card})
