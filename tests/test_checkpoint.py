import json

import pytest
import torch

from dmwan_qdrant.errors import CheckpointError
from dmwan_qdrant.model import load_model, model_fingerprint, save_model


def test_round_trip_bitwise(tiny_model, tmp_path):
    path = save_model(tiny_model, tmp_path / "bundle", metadata={"epoch": 3})
    restored = load_model(path)
    x = torch.randn(5, 3, 48, 48)
    a, b = tiny_model.embed_photos(x), restored.embed_photos(x)
    assert torch.equal(a.global_, b.global_) and torch.equal(a.tokens, b.tokens)
    assert torch.equal(tiny_model.embed_texts(["a cat"]), restored.embed_texts(["a cat"]))
    assert restored.fingerprint == model_fingerprint(tiny_model)
    assert restored.metadata["epoch"] == 3
    assert restored.class_names == ["cat", "dog", "car", "house"]
    record = json.loads((path / "config.json").read_text())
    assert record["preprocessing"]["image_size"] == 48


def test_overwrite_keeps_one_bundle(tiny_model, tmp_path):
    save_model(tiny_model, tmp_path / "bundle")
    save_model(tiny_model, tmp_path / "bundle")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_truncated_and_corrupted_bundles(tiny_model, tmp_path):
    path = save_model(tiny_model, tmp_path / "bundle")
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_model(path)
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_model(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(path)
    with pytest.raises(CheckpointError, match="not a model bundle"):
        load_model(tmp_path / "missing")
