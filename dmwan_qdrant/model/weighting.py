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
    """Per-pair scores of the two levels, before they become weights."""

    local: torch.Tensor | None
    global_: torch.Tensor
    text: torch.Tensor | None

    def combined(self, config: ModelConfig) -> torch.Tensor:
        score = config.global_coef * self.global_
        if self.local is not None:
            score = score + config.local_coef * self.local
        if self.text is not None:
            score = score + config.text_coef * self.text
        return score


class AlignmentWeighting(nn.Module):
    """Turns alignment scores into the dynamic alignment weight list (mean 1, no gradient).

    "Dynamic": scores are standardised by running statistics, and when sample ids are given each
    anchor sketch keeps a running score across the steps it is seen in, so a persistently bad
    sketch is down-weighted consistently rather than by the luck of its batch.
    """

    def __init__(self, config: ModelConfig, memory_size: int = 0) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_var", torch.ones(()))
        self.register_buffer("memory", torch.full((memory_size,), float("nan")), persistent=False)

    def reset_statistics(self) -> None:
        """Start the score statistics and the warmup afresh (fine-tuning on other data)."""
        self.step.zero_()
        self.running_mean.zero_()
        self.running_var.fill_(1.0)

    def resize_memory(self, size: int) -> None:
        """Make room for per-sample scores of ``size`` anchor sketches (training only)."""
        self.memory = torch.full((size,), float("nan"), device=self.running_mean.device)

    @torch.no_grad()
    def forward(self, scores: torch.Tensor, sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Weights (B,) for combined scores (B,); uniform when weighting is off or warming up."""
        cfg = self.config
        scores = scores.detach().float()
        if self.training:
            m = cfg.weight_momentum
            self.running_mean.mul_(m).add_((1 - m) * scores.mean())
            self.running_var.mul_(m).add_((1 - m) * scores.var(unbiased=False))
            self.step.add_(1)
        ones = torch.ones_like(scores)
        if not cfg.use_weighting or int(self.step) <= cfg.weight_warmup_steps or scores.numel() < 2:
            return ones
        z = (scores - self.running_mean) / self.running_var.clamp_min(1e-6).sqrt()
        if sample_ids is not None and self.memory.numel() > 0:
            ids = sample_ids.to(self.memory.device).long() % self.memory.numel()
            past = self.memory[ids]
            smoothed = torch.where(torch.isnan(past), z, cfg.weight_momentum * past + (1 - cfg.weight_momentum) * z)
            if self.training:
                self.memory[ids] = smoothed
            z = smoothed
        if cfg.weight_one_sided:
            z = z.clamp(max=0.0)  # only pairs below the running mean lose weight
        w = torch.softmax(z / cfg.weight_temperature, dim=0) * scores.numel()
        w = w.clamp(cfg.weight_min, cfg.weight_max)
        return w / w.mean()


def weight_statistics(weights: torch.Tensor) -> dict[str, float]:
    """Summary of a weight list for logs: mean, std, min, max."""
    w = weights.detach().float()
    return {
        "w_mean": float(w.mean()),
        "w_std": float(w.std(unbiased=False)),
        "w_min": float(w.min()),
        "w_max": float(w.max()),
    }
