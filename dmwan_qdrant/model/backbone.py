"""Visual and text towers: open_clip's CLIP and timm ViTs behind one small interface.

The visual adapters expose the ViT's token sequence so that a learned domain embedding can be
added to every input token, and return both the pooled (global) feature and the patch tokens.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsUnavailableError
from .config import ModelConfig


def _offline_hint(what: str, source: str) -> str:
    return (
        f"cannot load {what} weights {source!r}: they are not cached and could not be downloaded. "
        "Download the file on a machine with internet access and pass its path instead "
        "(e.g. --pretrained /path/to/open_clip_pytorch_model.bin)"
    )


class OpenClipVisual(nn.Module):
    """The CLIP visual tower with a per-sample bias added to its input tokens."""

    def __init__(self, visual: nn.Module, pool: str = "token") -> None:
        super().__init__()
        self.visual = visual
        self.pool = pool
        self.width = int(visual.class_embedding.shape[0])
        self.out_dim = int(visual.proj.shape[1]) if visual.proj is not None else self.width
        self.grid = tuple(visual.grid_size)

    def forward(self, images: torch.Tensor, token_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        if token_bias is not None:
            x = x + token_bias[:, None, :].to(x.dtype)
        x = v.ln_pre(v.patch_dropout(x))
        x = v.transformer(x)
        x = v.ln_post(x)
        pooled, tokens = (x[:, 0] if self.pool == "token" else x[:, 1:].mean(dim=1)), x[:, 1:]
        if v.proj is not None:
            pooled = pooled @ v.proj
        return pooled, tokens


class TimmVisual(nn.Module):
    """A timm VisionTransformer with a per-sample bias added to its input tokens."""

    def __init__(self, vit: nn.Module, pool: str = "token") -> None:
        super().__init__()
        self.vit = vit
        self.pool = pool
        self.width = int(vit.embed_dim)
        self.out_dim = self.width
        self.grid = tuple(vit.patch_embed.grid_size)
        self.prefix = int(vit.num_prefix_tokens)

    def forward(self, images: torch.Tensor, token_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.vit
        x = v._pos_embed(v.patch_embed(images))
        if token_bias is not None:
            x = x + token_bias[:, None, :].to(x.dtype)
        x = v.norm_pre(v.patch_drop(x))
        x = v.blocks(x)
        x = v.norm(x)
        pooled = x[:, 0] if self.prefix and self.pool == "token" else x[:, self.prefix :].mean(dim=1)
        return pooled, x[:, self.prefix :]


def conv_stem(out_channels: int, patch_size: int) -> nn.Module:
    """Stride-2 3x3 convolutions down to the patch grid, then a 1x1 to the token width."""
    layers: list[nn.Module] = []
    channels, c = 3, max(16, out_channels // 4)
    stride = 1
    while stride < patch_size:
        layers += [nn.Conv2d(channels, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        channels, c, stride = c, min(out_channels, c * 2), stride * 2
    layers.append(nn.Conv2d(channels, out_channels, 1))
    return nn.Sequential(*layers)


def _is_local_file(source: str | None) -> bool:
    return bool(source) and Path(str(source)).expanduser().is_file()


def _looks_like_path(source: str) -> bool:
    return os.sep in source or source.endswith((".pt", ".bin", ".safetensors", ".pth"))


def create_clip(config: ModelConfig, pretrained: str | None, flag: str = "--pretrained") -> nn.Module:
    """The open_clip CLIP model of ``config``, with ``pretrained`` weights (tag or file) or random.

    Raises:
        WeightsUnavailableError: a tag that is not cached and cannot be downloaded, or a path
            that does not exist.
    """
    import open_clip

    if config.clip_config is not None:
        from open_clip.model import CLIP

        cfg = dict(config.clip_config)
        model = CLIP(**cfg)
        if pretrained and not _is_local_file(pretrained) and not _looks_like_path(pretrained):
            raise WeightsUnavailableError(
                f"preset {config.name!r} has an inline CLIP config with no published weights: "
                f"pass a weights file, not the tag {pretrained!r}"
            )
        if pretrained:
            _load_state_file(model, pretrained, "CLIP")
        return model
    if pretrained and not _is_local_file(pretrained):
        if _looks_like_path(pretrained):
            raise WeightsUnavailableError(f"pretrained weights file not found: {pretrained}")
        known = [tag for name, tag in open_clip.list_pretrained() if name == config.clip_model]
        if pretrained not in known:
            raise WeightsUnavailableError(
                f"unknown pretrained tag {pretrained!r} for {config.clip_model} (tags: {', '.join(known)})"
            )
    try:
        with _clip_download(config.clip_model, pretrained, flag):
            return open_clip.create_model(config.clip_model, pretrained=pretrained or None, load_weights=bool(pretrained))
    except WeightsUnavailableError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        if pretrained and not _is_local_file(pretrained):
            raise WeightsUnavailableError(_offline_hint("CLIP", pretrained)) from exc
        raise WeightsUnavailableError(f"cannot load CLIP weights from {pretrained}: {exc}") from exc


def _clip_download(clip_model: str | None, tag: str | None, flag: str) -> Any:
    """`hub_download` for open_clip's weights of ``tag`` (a no-op for a file or none)."""
    import contextlib

    import open_clip

    cfg = open_clip.get_pretrained_cfg(clip_model, tag) if tag and not _is_local_file(tag) else {}
    hub = str(cfg.get("hf_hub") or "").strip("/")
    if not hub:
        return contextlib.nullcontext()
    from .downloads import hub_download

    repo, name = (hub.rsplit("/", 1) if hub.count("/") > 1 else (hub, ""))
    names = [name] if name else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    return hub_download(f"CLIP weights {tag!r} of {clip_model}", repo, names, flag)


def _load_state_file(model: nn.Module, path: str, what: str) -> None:
    path = str(Path(path).expanduser())
    if not Path(path).is_file():
        raise WeightsUnavailableError(f"{what} weights file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
        model.load_state_dict(state)
    except Exception as exc:  # any reader or shape error is the same user-facing problem
        raise WeightsUnavailableError(f"cannot load {what} weights from {path}: {exc}") from exc


def create_timm_vit(config: ModelConfig, pretrained: str | None) -> nn.Module:
    """A timm ViT; ``pretrained`` is "hub" (download), a local file, or None (random)."""
    import timm

    kwargs: dict[str, Any] = dict(config.timm_kwargs)
    if not pretrained:
        return timm.create_model(config.timm_model, pretrained=False, **kwargs)
    if _is_local_file(pretrained):
        overlay = dict(file=str(Path(pretrained).expanduser()))
        return timm.create_model(config.timm_model, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    if pretrained != "hub":
        raise WeightsUnavailableError(f"timm weights must be 'hub' or an existing file, not {pretrained!r}")
    from .downloads import hub_download

    cfg = timm.models.get_pretrained_cfg(str(config.timm_model))
    repo = getattr(cfg, "hf_hub_id", None) or f"timm/{config.timm_model}"
    names = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else ["model.safetensors", "pytorch_model.bin"]
    try:
        with hub_download(f"timm weights of {config.timm_model}", repo, names):
            return timm.create_model(config.timm_model, pretrained=True, **kwargs)
    except WeightsUnavailableError:
        raise
    except Exception as exc:  # network errors come as many types from huggingface_hub
        raise WeightsUnavailableError(_offline_hint("timm", config.timm_model or "")) from exc


def create_towers(
    config: ModelConfig, pretrained: str | None, text_pretrained: str | None = None
) -> tuple[nn.Module, nn.Module | None]:
    """The visual adapter and the CLIP model that provides the text tower (None without text).

    For the open_clip backbone both towers come from one CLIP model and ``pretrained`` loads both.
    For timm, ``pretrained`` loads the ViT and ``text_pretrained`` the CLIP text tower.
    """
    needs_text = config.semantic_anchors == "text" and (config.use_text or config.use_weighting)
    if config.backbone == "timm_cnn":
        from .convnet import TimmConvNet, create_timm_convnet

        net = create_timm_convnet(str(config.timm_model), config.timm_kwargs, pretrained)
        clip = None
        if needs_text:
            clip = create_clip(config, text_pretrained, "--text-pretrained")
            del clip.visual
        return TimmConvNet(net, config.image_size, config.frozen_stages), clip
    if config.backbone == "open_clip":
        clip = create_clip(config, pretrained)
        if config.conv_stem:
            clip.visual.conv1 = conv_stem(clip.visual.conv1.out_channels, clip.visual.conv1.kernel_size[0])
        visual = OpenClipVisual(clip.visual, config.global_pool)
        del clip.visual  # owned by the adapter now; the text parts stay
        return visual, (clip if needs_text else None)
    vit = create_timm_vit(config, pretrained)
    if config.conv_stem:
        proj = vit.patch_embed.proj
        vit.patch_embed.proj = conv_stem(proj.out_channels, proj.kernel_size[0])
    visual = TimmVisual(vit, config.global_pool)
    clip = None
    if needs_text:
        clip = create_clip(config, text_pretrained, "--text-pretrained")
        del clip.visual
    return visual, clip
