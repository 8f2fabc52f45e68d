"""The cross-modal multi-level weighting module of DMWAN.

For every positive (sketch, photo) pair of a batch it measures how well the two align, at the level
of local tokens and of global embeddings, and turns those scores into the alignment weight list
that the weighted quadruplet loss uses. Weights carry no gradient: they decide how much each pair
counts, not what the encoder learns from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


def maxsim(query_tokens: torch.Tensor, doc_tokens: torch.Tensor) -> torch.Tensor:
    """Late-interaction similarity of paired token sets: mean over query tokens of the best match.

    Both inputs are L2-normalised, shaped (B, n, d) and (B, m, d); returns (B,). It is the score
    Qdrant's multivector MAX_SIM comparator computes (up to the mean), so training it trains the
    re-ranking served by the database.
    """
    sim = torch.einsum("bnd,bmd->bnm", query_tokens, doc_tokens)
    return sim.max(dim=2).values.mean(dim=1)


class LocalAggregation(nn.Module):
    """Local aggregation block: sketch tokens attend to photo tokens, then token similarity.

    The attention's output projection starts at zero, so the block starts as plain MaxSim and
    learns a correction from there.
    """

    def __init__(self, token_dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(token_dim)
        self.attention = nn.MultiheadAttention(token_dim, heads, batch_first=True)
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)

    def forward(self, sketch_tokens: torch.Tensor, photo_tokens: torch.Tensor) -> torch.Tensor:
        """Local alignment score (B,) of paired token sets shaped (B, n, d) and (B, m, d)."""
        attended, _ = self.attention(self.norm(sketch_tokens), photo_tokens, photo_tokens, need_weights=False)
        refined = F.normalize(sketch_tokens + attended, dim=-1)
        return maxsim(refined, photo_tokens)


@dataclass
class AlignmentScores:
    """Per-pair scores of the two levels, before they become weights.

    ``text`` is the pair's agreement with its class anchor (the mean of ``text_sketch`` and
    ``text_photo``, each sample's own agreement).
    """

    local: torch.Tensor | None
    global_: torch.Tensor
    text: torch.Tensor | None
    text_sketch: torch.Tensor | None = None
    text_photo: torch.Tensor | None = None

    def _pair(self, config: ModelConfig) -> torch.Tensor:
        score = config.global_coef * self.global_
        if self.local is not None:
            score = score + config.local_coef * self.local
        return score

    def combined(self, config: ModelConfig) -> torch.Tensor:
        """The pair's score: global, local and text levels weighed by their coefficients."""
        score = self._pair(config)
        if self.text is not None:
            score = score + config.text_coef * self.text
        return score

    def per_sample(self, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
        """(sketch score, photo score): the pair's score with each sample's own text agreement
        (`ModelConfig.weight_sample_text`), else the pair's score for both."""
        if not config.weight_sample_text or self.text_sketch is None or self.text_photo is None:
            score = self.combined(config)
            return score, score
        pair = self._pair(config)
        return pair + config.text_coef * self.text_sketch, pair + config.text_coef * self.text_photo


class AlignmentWeighting(nn.Module):
    """Turns alignment scores into the dynamic alignment weight list (mean 1, no gradient).

    "Dynamic": scores are standardised by running statistics (of the batch, or of each sample's
    class: `ModelConfig.weight_standardise`), and when sample ids are given each anchor sketch
    (and with ``weight_memory: both`` each positive photo) keeps a running standardised score
    across the steps it is seen in, so a persistently bad sample is down-weighted consistently
    rather than by the luck of its batch. A pair is weighed by the worse of its memories.
    """

    def __init__(self, config: ModelConfig, memory_size: int = 0) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_var", torch.ones(()))
        self.register_buffer("memory", torch.full((memory_size,), float("nan")), persistent=False)
        self.register_buffer("photo_memory", torch.full((0,), float("nan")), persistent=False)
        # Per class: running mean of its sketch and photo scores; pooled within-class variance.
        self.register_buffer("class_mean", torch.full((2, 0), float("nan")), persistent=False)
        self.register_buffer("class_var", torch.ones(()), persistent=False)
        # Per domain and class: running centroid of the global embeddings (centroid scores).
        self.register_buffer("centroids", torch.full((2, 0, 0), float("nan")), persistent=False)

    def reset_statistics(self) -> None:
        """Start the score statistics and the warmup afresh (fine-tuning on other data)."""
        self.step.zero_()
        self.running_mean.zero_()
        self.running_var.fill_(1.0)

    def resize_memory(self, size: int, photos: int = 0, classes: int = 0) -> None:
        """Make room for per-sample scores of ``size`` anchor sketches and ``photos`` photos,
        and per-class statistics of ``classes`` classes (training only)."""
        device = self.running_mean.device
        self.memory = torch.full((size,), float("nan"), device=device)
        self.photo_memory = torch.full((photos if self.config.weight_memory == "both" else 0,), float("nan"),
                                       device=device)
        self.class_mean = torch.full((2, classes), float("nan"), device=device)
        self.class_var = torch.ones((), device=device)
        self.centroids = torch.full((2, classes, 0), float("nan"), device=device)

    def training_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps to resume the weighting mid-run (memories, class statistics)."""
        keys = ("memory", "photo_memory", "class_mean", "class_var", "centroids")
        return {k: getattr(self, k).detach().cpu() for k in keys}

    def load_training_state(self, state: dict[str, torch.Tensor] | torch.Tensor) -> None:
        """Restore `training_state` (or the bare sketch memory of older checkpoints)."""
        if isinstance(state, torch.Tensor):
            state = {"memory": state}
        for key, value in state.items():
            target = getattr(self, key)
            if key == "centroids" and target.shape[:2] == value.shape[:2]:
                self.centroids = value.to(target.device).clone()
            elif target.shape == value.shape:
                target.copy_(value)

    @torch.no_grad()
    def centroid_scores(
        self, sketch: torch.Tensor, photo: torch.Tensor, labels: torch.Tensor,
        text_sketch: torch.Tensor | None = None, text_photo: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample scores of paired global embeddings (B, D): each sketch's cosine with its
        class's running photo centroid and each photo's with the sketch centroid, plus its own
        text agreement (``text_coef``). Updates the centroids when training."""
        cfg = self.config
        sketch, photo, labels = sketch.detach().float(), photo.detach().float(), labels.long()
        if self.centroids.shape[1] == 0:  # no class statistics (inference, tests): the pair's cosine
            cos = (sketch * photo).sum(-1)
            return cos, cos
        if self.centroids.shape[2] != sketch.shape[1]:
            self.centroids = torch.full((2, self.centroids.shape[1], sketch.shape[1]), float("nan"),
                                        device=sketch.device)
        if self.training:
            for domain, emb in ((0, sketch), (1, photo)):
                _blend_per_class(self.centroids[domain], emb, labels, cfg.weight_momentum)
        unit = F.normalize(self.centroids, dim=-1)
        s_score = (sketch * unit[1, labels]).sum(-1)
        p_score = (photo * unit[0, labels]).sum(-1)
        if text_sketch is not None and text_photo is not None:
            s_score = s_score + cfg.text_coef * text_sketch.detach().float()
            p_score = p_score + cfg.text_coef * text_photo.detach().float()
        return s_score, p_score

    def _standardise(self, scores: torch.Tensor, labels: torch.Tensor | None, domain: int) -> torch.Tensor:
        """z-scores of ``scores`` against the batch statistics or their class's (domain 0 =
        sketches, 1 = photos), updating the class statistics when training."""
        if self.config.weight_standardise != "class" or labels is None or self.class_mean.shape[1] == 0:
            return (scores - self.running_mean) / self.running_var.clamp_min(1e-6).sqrt()
        labels = labels.to(scores.device).long()
        means = self.class_mean[domain]
        if self.training:
            m = self.config.weight_momentum
            _blend_per_class(means, scores, labels, m)
            residual = scores - means[labels]
            self.class_var.mul_(m).add_((1 - m) * residual.pow(2).mean())
        return (scores - means[labels]) / self.class_var.clamp_min(1e-6).sqrt()

    def _remember(self, memory: torch.Tensor, ids: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """Blend ``z`` into the per-sample ``memory`` at ``ids`` and return the smoothed scores
        (with epoch refreshes the memory is only read; unscored samples take ``z``)."""
        if ids is None or memory.numel() == 0:
            return z
        ids = ids.to(memory.device).long() % memory.numel()
        past = memory[ids]
        if self.config.weight_refresh == "epoch":
            return torch.where(torch.isnan(past), z, past)
        m = self.config.weight_momentum
        smoothed = torch.where(torch.isnan(past), z, m * past + (1 - m) * z)
        if self.training:
            memory[ids] = smoothed
        return smoothed

    def refresh(self, sketch_scores: torch.Tensor, photo_scores: torch.Tensor | None = None) -> None:
        """Replace the memories with per-sample scores of the whole training set (standardised;
        ``weight_refresh: epoch``)."""
        if sketch_scores.shape == self.memory.shape:
            self.memory.copy_(sketch_scores.to(self.memory.device))
        if photo_scores is not None and photo_scores.shape == self.photo_memory.shape:
            self.photo_memory.copy_(photo_scores.to(self.photo_memory.device))

    @torch.no_grad()
    def forward(
        self,
        scores: torch.Tensor,
        sample_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        photo_ids: torch.Tensor | None = None,
        photo_scores: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weights (B,) for scores (B,); uniform when weighting is off or warming up.

        ``scores`` are the pairs' (or, with ``photo_scores``, the sketches') scores;
        ``sample_ids`` and ``photo_ids`` key the sketch and photo memories, ``labels`` the class
        statistics.
        """
        cfg = self.config
        scores = scores.detach().float()
        photo_scores = scores if photo_scores is None else photo_scores.detach().float()
        if self.training:
            m = cfg.weight_momentum
            self.running_mean.mul_(m).add_((1 - m) * scores.mean())
            self.running_var.mul_(m).add_((1 - m) * scores.var(unbiased=False))
            self.step.add_(1)
        ones = torch.ones_like(scores)
        if not cfg.use_weighting or int(self.step) <= cfg.weight_warmup_steps or scores.numel() < 2:
            return ones
        z = self._remember(self.memory, sample_ids, self._standardise(scores, labels, 0))
        if self.photo_memory.numel() and photo_ids is not None:
            z_photo = self._remember(self.photo_memory, photo_ids, self._standardise(photo_scores, labels, 1))
            z = torch.minimum(z, z_photo)  # a pair is as good as its worse sample
        if cfg.weight_one_sided:
            # Only pairs more than ``weight_tolerance`` sd below the running mean lose weight.
            z = (z + cfg.weight_tolerance).clamp(max=0.0)
        w = torch.softmax(z / cfg.weight_temperature, dim=0) * scores.numel()
        w = w.clamp(cfg.weight_min, cfg.weight_max)
        return w / w.mean()


def _blend_per_class(table: torch.Tensor, values: torch.Tensor, labels: torch.Tensor, momentum: float) -> None:
    """Blend each class's mean of ``values`` into its row of ``table`` with ``momentum``, in
    place; a row still NaN (never set) takes the mean as it is."""
    for c in labels.unique():
        mean = values[labels == c].mean(dim=0)
        past = table[c]
        table[c] = mean if torch.isnan(past).any() else momentum * past + (1 - momentum) * mean


def weight_statistics(weights: torch.Tensor) -> dict[str, float]:
    """Summary of a weight list for logs: mean, std, min, max."""
    w = weights.detach().float()
    return {
        "w_mean": float(w.mean()),
        "w_std": float(w.std(unbiased=False)),
        "w_min": float(w.min()),
        "w_max": float(w.max()),
    }
