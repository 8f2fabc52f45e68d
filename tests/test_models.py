"""Bundles a user can start from: pretrained towers with no training (`dmwan model create`), the
model card (`dmwan model info`), and what a collection records of its model."""

from __future__ import annotations

import json

import pytest
import torch

from cli_helpers import dmwan, one_line_error


def test_create_bundle_keeps_the_pretrained_towers(tmp_path, tiny_clip_file):
    from dmwan_qdrant.model import create_bundle, load_model

    path = create_bundle("tiny", tmp_path / "b", pretrained=str(tiny_clip_file))
    model = load_model(path)
    state = torch.load(tiny_clip_file, weights_only=True)
    blocks = model.visual.visual.transformer.resblocks[0].attn.in_proj_weight
    assert torch.equal(blocks, state["visual.transformer.resblocks.0.attn.in_proj_weight"])
    assert torch.equal(model.clip.token_embedding.weight, state["token_embedding.weight"])
    # The towers as they are: a sketch and a photo of the same pixels get the same vector.
    images = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        as_sketch = model.encode(images, torch.zeros(2, dtype=torch.long))[0]
        as_photo = model.encode(images, torch.ones(2, dtype=torch.long))[0]
    assert torch.allclose(as_sketch, as_photo)
    card = model.metadata["card"]
    assert card["preset"] == "tiny" and card["training"] is None
    assert card["pretrained"]["file"] == "tiny_clip.pt" and len(card["pretrained"]["sha256"]) == 64
    assert card["versions"]["torch"] == torch.__version__.split("+")[0] or card["versions"]["torch"]


def test_create_bundle_is_reproducible_and_random_without_weights(tmp_path):
    from dmwan_qdrant.model import create_bundle, load_model

    a = load_model(create_bundle("tiny_timm", tmp_path / "a", seed=3))
    b = load_model(create_bundle("tiny_timm", tmp_path / "b", seed=3))
    c = load_model(create_bundle("tiny_timm", tmp_path / "c", seed=4))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    # A head between different sizes is an orthonormal projection: it keeps the geometry.
    w = a.global_head.weight
    if w.shape[0] != w.shape[1]:
        assert torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-5)


def test_model_create_and_info_cli(tmp_path, capsys, tiny_clip_file):
    out = tmp_path / "clip-tiny"
    code, stdout, err = dmwan(capsys, "model", "create", "--preset", "tiny", "--pretrained", tiny_clip_file, "-o", out)
    assert code == 0, err
    assert "dmwan ingest" in stdout and str(out) in stdout
    code, stdout, err = dmwan(capsys, "model", "info", out, "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["preset"] == "tiny" and len(info["fingerprint"]) == 16 and info["training"] is None
    assert info["pretrained"]["file"] == "tiny_clip.pt"
    code, stdout, err = dmwan(capsys, "model", "info", out)
    assert code == 0 and "the pretrained towers as they are" in stdout and "tiny_clip.pt" in stdout
    assert "re-rank" in stdout and "off by default (no validation classes measured it" in stdout
    # A training run's choice, as `choose_rerank` records it, is what info reports.
    from dmwan_qdrant.model import card_of, read_bundle_record, write_card

    choice = {"on": True, "weight": 2.0, "prefetch": 100, "gain_mAP@200": 0.012, "se_mAP@200": 0.003,
              "gain_P@10": 0.02, "queries": 240,
              "validation": {"cosine": {"P@10": 0.45, "mAP@200": 0.41}, "fused": {"P@10": 0.47, "mAP@200": 0.422}}}
    write_card(out, {**card_of(read_bundle_record(out)), "rerank": choice})
    code, stdout, err = dmwan(capsys, "model", "info", out)
    line = next(x for x in stdout.splitlines() if x.startswith("re-rank"))
    assert "on by default (fused w 2.0, top 100" in line and "P@10 45.0 -> 47.0" in line and "+1.2" in line
    code, stdout, err = dmwan(capsys, "model", "info", out, "--json")
    assert json.loads(stdout)["rerank"] == choice

    # Nothing is overwritten by accident; --force replaces a bundle.
    code, _, err = dmwan(capsys, "model", "create", "--preset", "tiny", "-o", out)
    assert code == 2 and "--force" in one_line_error(err)
    code, _, err = dmwan(capsys, "model", "create", "--preset", "tiny", "-o", out, "--force")
    assert code == 0, err
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("x")
    code, _, err = dmwan(capsys, "model", "create", "--preset", "tiny", "-o", other, "--force")
    assert code == 2 and "not a bundle" in one_line_error(err)
    assert (other / "todo.txt").read_text() == "x"


def test_model_create_errors_are_one_line(tmp_path, capsys, monkeypatch):
    code, _, err = dmwan(capsys, "model", "create", "--preset", "nope", "-o", tmp_path / "x")
    assert code == 5 and "unknown model preset" in one_line_error(err)
    code, _, err = dmwan(capsys, "model", "create", "--preset", "tiny", "--pretrained", tmp_path / "gone.pt",
                         "-o", tmp_path / "x")
    assert code == 5 and "not found" in one_line_error(err)
    code, _, err = dmwan(capsys, "model", "create", "--preset", "tiny", "--pretrained", "openai", "-o", tmp_path / "x")
    assert code == 5 and "no published weights" in one_line_error(err)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what a machine without the internet meets, at once
    code, _, err = dmwan(capsys, "model", "create", "--preset", "vit_b16", "--pretrained", "openai",
                         "-o", tmp_path / "x")
    line = one_line_error(err)
    assert code == 5 and "--pretrained /path/to/" in line
    assert not (tmp_path / "x").exists()
    code, _, err = dmwan(capsys, "model", "info", tmp_path / "nowhere")
    assert code == 5 and "not a model bundle" in one_line_error(err)


def test_pretrained_bundle_fills_a_collection_and_is_named_by_it(tmp_path, capsys, tiny_clip_file):
    from PIL import Image

    bundle = tmp_path / "clip-tiny"
    assert dmwan(capsys, "model", "create", "--preset", "tiny", "--pretrained", tiny_clip_file, "-o", bundle)[0] == 0
    photos = tmp_path / "photos"
    for label, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        (photos / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), tuple(min(255, c + 20 * i) for c in colour)).save(photos / label / f"{i}.png")
    store = tmp_path / "store"
    code, _, err = dmwan(capsys, "ingest", photos, "--collection", "mine", "--model", bundle, "--store", store)
    assert code == 0, err
    code, stdout, err = dmwan(capsys, "collections", "info", "mine", "--store", store, "--json")
    assert code == 0, err
    model = json.loads(stdout)["model"]
    assert model["trained_on"] == "none (the pretrained towers as they are)"
    assert model["pretrained"].startswith("file tiny_clip.pt")
    code, stdout, err = dmwan(capsys, "query", photos / "red" / "0.png", "--collection", "mine", "--store", store,
                              "--json", "-k", "1")
    assert code == 0, err
    assert json.loads(stdout)["queries"][0]["results"][0]["path"].endswith("red/0.png")
