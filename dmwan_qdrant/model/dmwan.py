"""The DMWAN model: shared ViT with domain embedding, multi-level weighting, weighted losses."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .backbone import create_towers
from .config import ModelConfig
from .imageprep import cpu_chunk
from .losses import semantic_loss, token_triplet_loss, weighted_quadruplet_loss
from .preprocess import DOMAINS, PHOTO, SKETCH, build_transform
from .weighting import AlignmentScores, AlignmentWeighting, LocalAggregation, maxsim, weight_statistics


@dataclass
class Embeddings:
    """Output of the inference API: L2-normalised global vectors and local tokens (float32)."""

    global_: torch.Tensor  # (B, D)
    tokens: torch.Tensor  # (B, n_tokens, token_dim)

    def __len__(self) -> int:
        return int(self.global_.shape[0])


def random_anchors(class_names: Sequence[str], dim: int) -> torch.Tensor:
    """One fixed random unit vector per class, drawn from the class's name alone (the same
    vector for the same name in any run, on any worker): proxies for the semantic loss."""
    import zlib

    rows = []
    for name in class_names:
        generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        rows.append(torch.randn(dim, generator=generator))
    return F.normalize(torch.stack(rows), dim=-1)


def pooling_matrix(grid: tuple[int, int], side: int) -> torch.Tensor:
    """Adaptive average pooling of a ``grid`` (rows, columns) to ``side`` x ``side`` as a
    (side², rows*columns) matrix: each output cell averages the cells its window covers."""

    # Built in numpy, outside autograd and tracing: the export sees one constant.

    def windows(length: int) -> np.ndarray:
        m = np.zeros((side, length), dtype=np.float32)
        for i in range(side):
            start, end = (i * length) // side, -(-((i + 1) * length) // side)
            m[i, start:end] = 1.0 / (end - start)
        return m

    return torch.from_numpy(np.kron(windows(grid[0]), windows(grid[1])))


class DMWAN(nn.Module):
    """Dynamic Multi-level Weighted Alignment Network for zero-shot sketch-based image retrieval.

    Calling the module on a batch of quadruplets returns the training loss and its parts; the
    ``embed_*`` methods are the inference API.
    """

    runtime = "torch"
    """Which engine runs it (an `OnnxEncoder` says ``"onnx"``)."""

    def __init__(self, config: ModelConfig, pretrained: str | None = None, text_pretrained: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.visual, self.clip = create_towers(config, pretrained, text_pretrained)
        if self.clip is not None:
            self.clip.requires_grad_(False)  # the text tower is frozen: class anchors stay put
        width, out_dim = self.visual.width, self.visual.out_dim
        bias_dim = getattr(self.visual, "bias_dim", width)  # where the adapter adds the domain bias
        self.domain_embedding = nn.Embedding(2, bias_dim) if config.domain_embedding else None
        if self.domain_embedding is not None:
            nn.init.normal_(self.domain_embedding.weight, std=0.02)
        self.global_head = nn.Linear(out_dim, config.embed_dim, bias=False)
        if out_dim == config.embed_dim:
            # Start as the identity so a CLIP visual tower stays aligned with its text tower.
            nn.init.eye_(self.global_head.weight)
        self.token_head = nn.Linear(width, config.token_dim)
        self.local_block = LocalAggregation(config.token_dim, config.cross_attention_heads) if config.use_local else None
        self.weighting = AlignmentWeighting(config)
        if config.freeze_backbone:
            self.visual.requires_grad_(False)
        self.register_buffer("class_anchors", torch.zeros(0, config.embed_dim), persistent=False)
        self.register_buffer("token_pool", torch.zeros(0, 0), persistent=False)  # for ONNX exports
        self._tokenizer = None

    def train(self, mode: bool = True) -> "DMWAN":
        """Like ``nn.Module.train``; a frozen backbone stays in eval mode (normalisation statistics
        fixed too), so the linear-probe baseline really trains only the heads."""
        super().train(mode)
        if self.config.freeze_backbone:
            self.visual.eval()
        return self

    # --- encoders -----------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, domains: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised global embeddings (B, D) and local tokens (B, n, d) of preprocessed images."""
        bias = self.domain_embedding(domains) if self.domain_embedding is not None else None
        pooled, patches = self.visual(images, bias)
        global_ = F.normalize(self.global_head(pooled.float()), dim=-1)
        n = self.config.num_tokens
        if n:
            patches = self._pool_tokens(patches, int(round(n**0.5)))
        tokens = F.normalize(self.token_head(patches.float()), dim=-1)
        return global_, tokens

    def _pool_tokens(self, patches: torch.Tensor, side: int) -> torch.Tensor:
        """The patch grid (B, gh*gw, C) average-pooled to ``side`` x ``side`` tokens (B, side², C).

        Adaptive average pooling; inside an ONNX export the same averages as one fixed matrix
        product, since the exporter cannot write adaptive pooling of a grid it does not divide."""
        gh, gw = self.visual.grid
        if torch.onnx.is_in_onnx_export():
            if self.token_pool.shape != (side * side, gh * gw):
                self.token_pool = pooling_matrix((gh, gw), side).to(patches.device)
            return torch.matmul(self.token_pool.to(patches.dtype), patches)
        grid = patches.transpose(1, 2).reshape(patches.shape[0], -1, gh, gw)
        return F.adaptive_avg_pool2d(grid, side).flatten(2).transpose(1, 2)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            import open_clip

            cfg = self.config
            if cfg.clip_config is not None:
                from open_clip.tokenizer import SimpleTokenizer

                self._tokenizer = SimpleTokenizer(context_length=cfg.context_length)
            else:
                self._tokenizer = open_clip.get_tokenizer(cfg.clip_model, context_length=cfg.context_length)
        return self._tokenizer

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised text embeddings (B, D) from the frozen CLIP text tower."""
        if self.clip is None:
            raise RuntimeError("this model has no text tower (use_text and use_weighting are off)")
        device = self.global_head.weight.device
        ids = self.tokenizer(list(texts)).to(device)
        with torch.no_grad():
            return F.normalize(self.clip.encode_text(ids).float(), dim=-1)

    def text_anchors(self, class_names: Sequence[str]) -> torch.Tensor:
        """Per class, the normalised mean of its prompt embeddings: (C, D)."""
        prompts = self.config.prompts
        texts = [p.format(c.replace("_", " ")) for c in class_names for p in prompts]
        emb = self.encode_text(texts).view(len(class_names), len(prompts), -1).mean(dim=1)
        return F.normalize(emb, dim=-1)

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Fix the training classes whose text anchors the semantic loss and weighting use."""
        self.class_names = list(class_names)
        if self.config.use_text and self.config.semantic_anchors == "random":
            self.class_anchors = random_anchors(class_names, self.config.embed_dim).to(self.device)
        elif self.config.use_text and self.config.semantic_anchors == "sentence":
            from .sentence import sentence_anchors

            self.class_anchors = sentence_anchors(class_names, self.config.embed_dim,
                                                  self.config.center_anchors).to(self.device)
        elif self.clip is not None:
            anchors = self.text_anchors(class_names)
            if self.config.center_anchors and len(class_names) > 1:
                anchors = F.normalize(anchors - anchors.mean(dim=0, keepdim=True), dim=-1)
            self.class_anchors = anchors

    # --- training -----------------------------------------------------------------------------
    def alignment_scores(
        self,
        sketch: tuple[torch.Tensor, torch.Tensor],
        photo: tuple[torch.Tensor, torch.Tensor],
        labels: torch.Tensor | None,
    ) -> AlignmentScores:
        """Local and global alignment of paired (global, tokens) sketch and photo encodings."""
        (gs, ts), (gp, tp) = sketch, photo
        local = self.local_block(ts, tp) if self.local_block is not None else None
        text = text_s = text_p = None
        if self.config.use_text and labels is not None and self.class_anchors.numel():
            anchors = self.class_anchors[labels]
            text_s, text_p = (gs * anchors).sum(-1), (gp * anchors).sum(-1)
            text = 0.5 * (text_s + text_p)
        return AlignmentScores(local=local, global_=(gs * gp).sum(-1), text=text, text_sketch=text_s, text_photo=text_p)

    def forward(
        self,
        sketch: torch.Tensor,
        photo: torch.Tensor,
        neg_photo: torch.Tensor,
        neg_sketch: torch.Tensor,
        labels: torch.Tensor,
        neg_labels: torch.Tensor,
        sample_ids: torch.Tensor | None = None,
        photo_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Loss of a batch of quadruplets; returns ``loss``, its parts and the weight list.

        ``sample_ids`` and ``photo_ids`` (the anchor sketches' and positive photos' indices in the
        training set) key the weighting's per-sample memories."""
        cfg = self.config
        b = sketch.shape[0]
        quad = cfg.loss == "quadruplet"
        images = [sketch, photo, neg_photo] + ([neg_sketch] if quad else [])
        domains = [SKETCH, PHOTO, PHOTO] + ([SKETCH] if quad else [])
        dom = torch.cat([torch.full((b,), d, dtype=torch.long, device=sketch.device) for d in domains])
        g, t = self.encode(torch.cat(images), dom)
        gs, gp, gpn = g[:b], g[b : 2 * b], g[2 * b : 3 * b]
        ts, tp, tpn = t[:b], t[b : 2 * b], t[2 * b : 3 * b]
        gsn = g[3 * b :] if quad else None

        scores = self.alignment_scores((gs, ts), (gp, tp), labels)
        if cfg.weight_sample_score == "centroid":
            sketch_scores, photo_scores = self.weighting.centroid_scores(gs, gp, labels, scores.text_sketch,
                                                                         scores.text_photo)
        else:
            sketch_scores, photo_scores = scores.per_sample(cfg)
        weights = self.weighting(sketch_scores, sample_ids, labels, photo_ids, photo_scores)
        out: dict[str, torch.Tensor] = {"weights": weights}
        loss = weighted_quadruplet_loss(
            gs, gp, gpn, gsn, weights, cfg.margin_photo, cfg.margin_sketch, cfg.sketch_term_weight, cfg.sketch_term_anchor
        )
        out["loss_quadruplet"] = loss.detach()
        if cfg.use_text and self.class_anchors.numel() and cfg.semantic_weight:
            all_labels = torch.cat([labels, labels, neg_labels] + ([neg_labels] if quad else []))
            sem = semantic_loss(g, self.class_anchors, all_labels, cfg.semantic_temperature)
            loss = loss + cfg.semantic_weight * sem
            out["loss_semantic"] = sem.detach()
        if cfg.token_loss_weight:
            tok = token_triplet_loss(maxsim(ts, tp), maxsim(ts, tpn), cfg.margin_photo)
            if self.local_block is not None:
                tok = tok + token_triplet_loss(scores.local, self.local_block(ts, tpn), cfg.margin_photo)
            loss = loss + cfg.token_loss_weight * tok
            out["loss_token"] = tok.detach()
        if cfg.preserve_weight and getattr(self, "_teacher", None) is not None:
            kept = self._preserve_loss(torch.cat([photo, neg_photo]), torch.cat([gp, gpn]))
            loss = loss + cfg.preserve_weight * kept
            out["loss_preserve"] = kept.detach()
        out["loss"] = loss
        return out

    def attach_teacher(self, start: "DMWAN") -> None:
        """Keep a frozen copy of ``start`` (the run's starting model) for the knowledge
        preservation term (``preserve_weight``). It is not a submodule: it is never saved, and
        it follows the model to its device on first use."""
        teacher = copy.deepcopy(start).eval().requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)

    def _preserve_loss(self, photos: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """Mean of 1 - cos(photo embedding, the starting model's embedding of the same photo)."""
        teacher = self._teacher
        if teacher.device != photos.device:
            teacher.to(photos.device)
        with torch.no_grad():
            domains = torch.full((photos.shape[0],), PHOTO, dtype=torch.long, device=photos.device)
            target, _ = teacher.encode(photos, domains)
        return (1 - (embedded * target).sum(-1)).mean()

    @staticmethod
    def weight_statistics(weights: torch.Tensor) -> dict[str, float]:
        return weight_statistics(weights)

    # --- inference API ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.global_head.weight.device

    def transform(self, domain: str, train: bool = False):
        """The preprocessing of ``domain`` images for this model."""
        return build_transform(self.config, domain, train)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        was_training = self.training
        self.eval()
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()
        )
        try:
            with torch.inference_mode(), autocast:
                yield
        finally:
            self.train(was_training)

    def _embed(self, images: torch.Tensor | np.ndarray | Sequence[Image.Image], domain: str) -> Embeddings:
        if isinstance(images, np.ndarray):  # preprocessed arrays, as the ingest's decoders give them
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor):
            tf = self.transform(domain)
            images = torch.stack([tf(im) for im in images])
        images = images.to(self.device, non_blocking=True)
        domains = torch.full((images.shape[0],), DOMAINS[domain], dtype=torch.long, device=self.device)
        step = cpu_chunk(images.shape[-1]) if self.device.type == "cpu" else len(images)
        with self._inference():
            if len(images) <= step:
                g, t = self.encode(images, domains)
            else:  # on a CPU, in chunks whose activations stay in the caches (`cpu_chunk`)
                parts = [self.encode(images[i:i + step], domains[i:i + step]) for i in range(0, len(images), step)]
                g, t = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return Embeddings(global_=g.float(), tokens=t.float())

    def embed_photos(self, images: torch.Tensor | Sequence[Image.Image]) -> Embeddings:
        """Embed a batch of photos (preprocessed tensor (B, 3, S, S) or PIL images)."""
        return self._embed(images, "photo")

    def embed_sketches(self, images: torch.Tensor | Sequence[Image.Image]) -> Embeddings:
        """Embed a batch of sketches (preprocessed tensor (B, 3, S, S) or PIL images)."""
        return self._embed(images, "sketch")

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed texts into the retrieval space (B, D), e.g. "a red shoe"."""
        with self._inference():
            return self.encode_text(texts).float()
