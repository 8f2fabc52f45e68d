"""Model configuration: one dataclass, named presets stored as JSON files.

Every choice of the DMWAN reconstruction is a field here, so that an ablation is a config change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ModelError

PRESET_PACKAGE = "dmwan_qdrant.presets"


#: The fields that take one of a few words, and those words.
_CHOICES: dict[str, tuple[str, ...]] = {
    "global_pool": ("token", "avg"),
    "sketch_term_anchor": ("photo", "sketch"),
    "backbone": ("open_clip", "timm", "timm_cnn"),
    "semantic_anchors": ("text", "random", "sentence"),
    "augment": ("light", "strong"),
    "loss": ("quadruplet", "triplet"),
    "weight_standardise": ("batch", "class"),
    "weight_sample_score": ("pair", "centroid"),
    "weight_refresh": ("step", "epoch"),
    "weight_memory": ("sketch", "both"),
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, weighting and loss settings of a DMWAN model."""

    name: str = "custom"

    # --- feature extraction -------------------------------------------------------------------
    #: "open_clip": the CLIP visual tower; "timm": a timm ViT (text tower still from open_clip);
    #: "timm_cnn": a timm EfficientNet (`dmwan_qdrant.model.convnet`), no text tower of its own.
    backbone: str = "open_clip"
    #: The weights a bundle of this preset starts from when none are named: "package" (an
    #: installed pip package's, `convnet.PACKAGE_WEIGHTS`), an open_clip tag, or None (random).
    default_pretrained: str | None = None
    #: open_clip architecture name, e.g. "ViT-B-16" (text tower; visual too for open_clip).
    clip_model: str | None = "ViT-B-16"
    #: Inline open_clip config (embed_dim, vision_cfg, text_cfg) instead of a named one.
    clip_config: dict[str, Any] | None = None
    #: timm model name when backbone == "timm".
    timm_model: str | None = None
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Global embedding size D; must equal the CLIP embedding size when text is used.
    embed_dim: int = 512
    #: Local token size d_tok after projection.
    token_dim: int = 128
    #: Local tokens kept per image (patch grid average-pooled to a square of this many); 0 = all.
    num_tokens: int = 16
    #: Global feature: "token" (the CLS token, as CLIP was trained) or "avg" (mean of patch
    #: tokens; a ViT trained from scratch learns much faster from it).
    global_pool: str = "token"
    #: Replace the ViT's patchify convolution by a small convolutional stem with the same output
    #: grid (early convolutions make a ViT trained from scratch optimise far faster).
    conv_stem: bool = False
    #: Learned domain embedding (sketch / photo) added to every input token of the shared ViT.
    domain_embedding: bool = True
    #: Freeze the visual backbone and train only the heads (the linear-probe baseline).
    freeze_backbone: bool = False
    #: "timm_cnn": stages of the network (after the stem) kept frozen, in eval mode and run
    #: without autograd; 0 trains them all.
    frozen_stages: int = 0
    #: Context length of the text tokenizer.
    context_length: int = 77
    #: Prompts averaged into a class's text anchor; "{}" is the class name.
    prompts: tuple[str, ...] = ("a photo of a {}", "a sketch of a {}", "a drawing of a {}")
    #: Subtract the mean anchor of the training classes before normalising. Class prompts share
    #: most of their text, so raw anchors are nearly collinear; centring spreads them apart.
    center_anchors: bool = True

    # --- preprocessing (travels with the weights) ---------------------------------------------
    image_size: int = 224
    #: Training augmentation: "light" (a mild crop and a flip) or "strong" (`model.augment`:
    #: crops, flips, small affine and stroke thickness for sketches; colour jitter, greyscale
    #: and edge maps for photos), for small real datasets with one sketch per class.
    augment: str = "light"
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    # --- multi-level weighting ----------------------------------------------------------------
    #: Weight positive pairs by alignment; off = uniform weights.
    use_weighting: bool = True
    #: Local aggregation block (token cross-attention + token similarity) in the alignment score.
    use_local: bool = True
    cross_attention_heads: int = 2
    #: Coefficients of the local score, the global cosine and the text agreement in the score.
    local_coef: float = 1.0
    global_coef: float = 1.0
    text_coef: float = 0.5
    #: Softmax temperature over standardised scores; larger = flatter weights.
    weight_temperature: float = 1.0
    #: Momentum of the running score statistics and of the per-sample score memory.
    weight_momentum: float = 0.9
    #: Steps with uniform weights before weighting starts (embeddings are noise at first).
    weight_warmup_steps: int = 50
    weight_min: float = 0.2
    #: One-sided weighting: pairs scoring above the running mean all keep the same weight, only
    #: those below it are down-weighted. The softmax over all scores (off, the paper's reading)
    #: also up-weights pairs that are already well aligned, whose hinge losses are mostly zero:
    #: it cost 8 points of mAP without low-quality data, one-sided 3 (BENCHMARKS.md, ablation).
    weight_one_sided: bool = True
    #: With one-sided weighting, how many standard deviations below its class's mean a sample's
    #: score may sit and still count as clean (full weight). 0: every sample below the mean loses
    #: weight, as many on clean data as on noisy data; 1 (chosen on validation classes over 0,
    #: BENCHMARKS.md, ablation): only the outliers of their class do.
    weight_tolerance: float = 1.0
    weight_max: float = 3.0
    #: What a score is standardised against: "batch" (running statistics of all scores) or
    #: "class" (each score against the running mean of its own class, with the pooled
    #: within-class spread), so that a hard class does not look like a bad sample.
    weight_standardise: str = "class"
    #: Per-sample memories of standardised scores: "sketch" (one per anchor sketch) or "both"
    #: (one per photo too; a pair is weighed by the worse of its two samples).
    weight_memory: str = "both"
    #: Each memory takes its own sample's text-anchor agreement (the sketch's for the sketch, the
    #: photo's for the photo) instead of the pair's average: the one score that sees a sample alone.
    weight_sample_text: bool = False
    #: What the per-sample memories score: "pair" (the pair's multi-level alignment, which
    #: mixes in the partner's quality) or "centroid" (each sample's cosine with the running
    #: centroid of its class in the other domain, plus its own text agreement: the partner
    #: averaged out).
    weight_sample_score: str = "pair"
    #: How the memories are kept: "step" (each batch blends its scores in, with momentum) or
    #: "epoch" (recomputed at the start of every epoch after the first, from a pass over the
    #: whole training set with the current model: `dmwan_qdrant.eval.quality.sample_quality`).
    #: Step memories lag: they still hold what the embeddings said before they meant anything.
    weight_refresh: str = "epoch"

    # --- losses -------------------------------------------------------------------------------
    #: "quadruplet" (negative photo and negative sketch) or "triplet" (negative photo only).
    loss: str = "quadruplet"
    margin_photo: float = 0.2
    margin_sketch: float = 0.2
    #: lambda: weight of the sketch-negative term of the quadruplet loss.
    sketch_term_weight: float = 1.0
    #: Anchor of the sketch-negative term: "photo" ranks sketches for the positive photo,
    #: [d(s,p) - d(p,s-) + m2]+, so both terms compare cross-domain distances; "sketch" is the
    #: literal [d(s,p) - d(s,s-) + m2]+, which compares a cross-domain distance with a
    #: within-domain one and collapses a backbone trained from scratch (sketches start clustered).
    sketch_term_anchor: str = "photo"
    #: Semantic loss: cross-entropy of cos(embedding, class anchor) / tau over training classes.
    use_text: bool = True
    #: Where the semantic loss's class anchors come from: "text" (the CLIP text tower's prompts)
    #: or "random" (fixed random unit vectors, one per training class, drawn from the class
    #: names: class proxies for a backbone with no text tower) or "sentence" (a sentence
    #: encoder's embeddings of the class names, `dmwan_qdrant.model.sentence`; no text tower).
    semantic_anchors: str = "text"
    semantic_weight: float = 1.0
    semantic_temperature: float = 0.07
    #: Token-level alignment term (MaxSim triplet on local tokens); trains what re-ranking uses.
    token_loss_weight: float = 0.5
    #: Knowledge preservation (as SAKE, Liu et al. 2019): the weight of a term that keeps each
    #: training photo's global embedding near the one the run's starting model gives it (mean of
    #: 1 - cosine), so that training on drawn pictures does not unlearn what the pretrained
    #: backbone knows of real photographs. 0 turns it off.
    preserve_weight: float = 0.0

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ModelError(f"{name} must be {' or '.join(map(repr, allowed))}, not {value!r}")
        if self.clip_model is None and self.clip_config is None and (
            self.backbone == "open_clip" or (self.use_text and self.semantic_anchors == "text")
        ):
            raise ModelError("a CLIP model name or inline config is needed for the text tower")
        if self.backbone in ("timm", "timm_cnn") and not self.timm_model:
            raise ModelError(f"backbone {self.backbone!r} needs timm_model")
        side = int(round(self.num_tokens**0.5))
        if self.num_tokens and side * side != self.num_tokens:
            raise ModelError(f"num_tokens must be a square number or 0, not {self.num_tokens}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        d = asdict(self)
        for key in ("prompts", "mean", "std"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a dict, refusing unknown keys (typos must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"unknown model config keys: {', '.join(unknown)}")
        data = dict(data)
        for key in ("prompts", "mean", "std"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def with_overrides(self, overrides: dict[str, Any] | None) -> "ModelConfig":
        """A copy with some fields replaced (ablation switches, sizes)."""
        if not overrides:
            return self
        return ModelConfig.from_dict({**self.to_dict(), **overrides})


def list_presets() -> list[str]:
    """Names of the shipped model presets."""
    return sorted(p.name[:-5] for p in resources.files(PRESET_PACKAGE).iterdir() if p.name.endswith(".json"))


def get_preset(name: str) -> ModelConfig:
    """The config of a shipped preset by name, or of a preset JSON file by path."""
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        return ModelConfig.from_dict(json.loads(path.read_text()))
    resource = resources.files(PRESET_PACKAGE) / f"{name}.json"
    if not resource.is_file():
        raise ModelError(f"unknown model preset {name!r} (presets: {', '.join(list_presets())})")
    return ModelConfig.from_dict(json.loads(resource.read_text()))


__all__ = ["ModelConfig", "get_preset", "list_presets", "replace"]
