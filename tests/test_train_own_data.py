"""Training on the user's own folder (`dmwan train --data`), fine-tuning a bundle (`--init`), and
the model card a run writes."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch

from cli_helpers import dmwan, one_line_error

from dmwan_qdrant.errors import DatasetError, UsageError


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """A user's folder: photo/<class>/, sketch/<class>/, no unseen-class list (drawn by --unseen)."""
    from dmwan_qdrant.data import ProceduralConfig, generate_benchmark

    root = generate_benchmark(tmp_path_factory.mktemp("own") / "shapes", ProceduralConfig(
        n_classes=8, unseen_classes=2, photos_per_class=8, sketches_per_class=8, image_size=48, seed=0))
    shutil.rmtree(root / "zeroshot")
    for extra in root.iterdir():
        if extra.is_file():
            extra.unlink()  # the generator's manifest: a user's folder has none
    return root


def _args(**kw) -> argparse.Namespace:
    base = dict(config=None, data=None, preset=None, pretrained=None, init=None, unseen=None, workers=None,
                gpus=False, cpus_per_worker=None, epochs=None, name=None, storage_path=None)
    return argparse.Namespace(**{**base, **kw})


def test_folder_run_config_without_a_file(own_data, tmp_path, monkeypatch):
    from dmwan_qdrant.training.train import config_from_args

    monkeypatch.chdir(tmp_path)
    cfg = config_from_args(_args(data=str(own_data), preset="tiny", unseen=2, epochs=3))
    assert cfg.data.name == "folder" and cfg.data.root == str(own_data) and cfg.data.unseen == 2
    assert cfg.model.preset == "tiny" and cfg.optim.epochs == 3 and cfg.name == "shapes-tiny"
    assert cfg.optim.lr == pytest.approx(0.004)  # the tiny recipe (procedural_tiny)
    big = config_from_args(_args(data="shapes", preset="vit_b16", pretrained="openai"))
    assert big.optim.backbone_lr_scale == pytest.approx(0.1) and big.model.pretrained == "openai"
    assert big.data.root == str(tmp_path / "shapes")  # absolute: Ray workers may start elsewhere
    # A config file still wins where given; --data then only names the folder.
    with_file = config_from_args(_args(config="procedural_tiny", data=str(own_data), unseen=2))
    assert with_file.name == "procedural-tiny" and with_file.data.name == "folder" and with_file.data.unseen == 2
    with pytest.raises(UsageError, match="--config"):
        config_from_args(_args())
    with pytest.raises(UsageError, match="one of them"):
        config_from_args(_args(data=str(own_data), preset="tiny", init="x"))
    # --data alone picks a preset (tests/test_recipe.py); a folder without an unseen list still
    # needs --unseen, said in one line.
    with pytest.raises(DatasetError, match="--unseen N"):
        config_from_args(_args(data=str(own_data)))


def test_fine_tuning_starts_from_the_bundle_and_says_so(own_data, tmp_path):
    from dmwan_qdrant.model import create_bundle, load_model
    from dmwan_qdrant.training.loop import train_local
    from dmwan_qdrant.training.train import config_from_args

    start = load_model(create_bundle("tiny", tmp_path / "start", seed=5))
    cfg = config_from_args(_args(data=str(own_data), init=str(tmp_path / "start"), unseen=2, epochs=1,
                                 storage_path=str(tmp_path / "runs")))
    cfg = cfg.with_overrides(**{"optim.steps_per_epoch": 3, "optim.batch_size": 8})
    assert cfg.name == "shapes-tiny-finetuned"
    model, state = train_local(cfg)
    card = model.metadata["card"]
    assert card["init"]["fingerprint"] == start.fingerprint
    assert card["training"]["dataset"] == "folder" and card["training"]["root"] == str(own_data)
    assert card["training"]["selected_epoch"] == 1 and len(card["training"]["unseen_classes"]) == 2
    assert set(card["metrics"]["test"]) == {"mAP@all", "P@100", "mAP@200", "P@200", "mAP@all plain", "mAP@200 plain"}
    # Three small steps moved the weights, from where the bundle had them.
    moved = [(a - b).abs().max().item() for a, b in zip(model.visual.parameters(), start.visual.parameters())]
    assert 0 < max(moved) < 1.0
    with pytest.raises(UsageError, match="overrides"):
        train_local(cfg.with_overrides(**{"model.overrides": {"text_coef": 0.0}}))


def test_folder_errors_are_one_line(own_data, tmp_path, capsys):
    code, _, err = dmwan(capsys, "train", "--data", own_data, "--preset", "tiny", "--storage-path", tmp_path)
    assert code == 4 and "--unseen N" in one_line_error(err)
    code, _, err = dmwan(capsys, "train", "--data", tmp_path / "nowhere", "--preset", "tiny", "--unseen", "2")
    assert code == 4 and "does not exist" in one_line_error(err)
    code, _, err = dmwan(capsys, "train", "--preset", "tiny")
    assert code == 2 and "--data" in one_line_error(err)


@pytest.mark.slow
def test_train_on_own_data_then_fine_tune_with_ray(own_data, tmp_path, capsys, tiny_clip_file):
    """`dmwan train --data` end to end on Ray Train, its card, then `--init` of its bundle."""
    runs = tmp_path / "runs"
    code, out, err = dmwan(capsys, "train", "--data", own_data, "--preset", "tiny", "--pretrained", tiny_clip_file,
                           "--unseen", "2", "--epochs", "1", "--storage-path", runs, "--json")
    assert code == 0, err
    summary = json.loads(out)
    bundle = runs / "shapes-tiny" / "model"
    assert summary["model"] == str(bundle)
    code, out, err = dmwan(capsys, "model", "info", bundle, "--json")
    card = json.loads(out)
    assert card["training"]["dataset"] == "folder" and card["training"]["root"] == str(own_data)
    assert card["training"]["epochs"] == 1 and card["training"]["selected_epoch"] == 1
    assert card["metrics"]["test"]["mAP@all"] == pytest.approx(summary["best"]["mAP@all"])
    assert card["pretrained"]["file"] == "tiny_clip.pt"
    code, out, err = dmwan(capsys, "model", "info", bundle)
    assert "folder" in out and "epoch 1 of 1" in out and "unseen test classes" in out

    code, out, err = dmwan(capsys, "train", "--data", own_data, "--init", bundle, "--unseen", "2", "--epochs", "1",
                           "--storage-path", runs, "--json")
    assert code == 0, err
    tuned = json.loads(out)["model"]
    code, out, err = dmwan(capsys, "model", "info", tuned, "--json")
    info = json.loads(out)
    assert info["init"]["fingerprint"] == card["fingerprint"] and info["fingerprint"] != card["fingerprint"]
    assert torch.__version__.startswith(info["versions"]["torch"].split("+")[0])


def test_eval_scores_a_bundle_on_own_data(own_data, tmp_path, capsys):
    """The pretrained-towers bundle is the baseline row: `dmwan eval` scores it on the same split
    a `--data --unseen N` run holds out (the same seed draws the same classes)."""
    from dmwan_qdrant.data import load_benchmark
    from dmwan_qdrant.model import create_bundle

    bundle = create_bundle("tiny", tmp_path / "b", seed=1)
    out = tmp_path / "m.json"
    code, stdout, err = dmwan(capsys, "eval", "--model", bundle, "--dataset", "folder", "--root", own_data,
                              "--unseen", "2", "--out", out)
    assert code == 0, err
    metrics = json.loads(out.read_text())
    held_out = load_benchmark("folder", own_data, unseen=2, seed=0)
    assert metrics["queries"] == len(held_out.test_sketches) and metrics["gallery"] == len(held_out.test_photos)
    assert 0.0 <= metrics["mAP@all"] <= 1.0
