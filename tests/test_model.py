import pytest
import torch

from dmwan_qdrant.errors import ModelError, WeightsUnavailableError
from dmwan_qdrant.model import create_model, list_presets


@pytest.mark.parametrize("preset", ["tiny", "tiny_timm"])
def test_forward_backward_and_size(preset, random_batch):
    model = create_model(preset, seed=0)
    model.set_class_names(["cat", "dog", "car", "house"])
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    out = model(**random_batch())
    out["loss"].backward()
    grads = [p.grad for p in model.visual.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert all(p.grad is None for p in model.clip.parameters()), "the text tower is frozen"
    assert out["weights"].shape == (4,)
    assert torch.isfinite(out["loss"])


def test_inference_api_shapes_and_norms(tiny_model):
    from PIL import Image

    e = tiny_model.embed_photos(torch.randn(3, 3, 48, 48))
    assert e.global_.shape == (3, 64) and e.tokens.shape == (3, 16, 32)
    assert torch.allclose(e.global_.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(e.tokens.norm(dim=-1), torch.ones(3, 16), atol=1e-5)
    pil = [Image.new("RGB", (80, 50), "white"), Image.new("RGB", (30, 90), "red")]
    s = tiny_model.embed_sketches(pil)
    assert s.global_.shape == (2, 64)
    t = tiny_model.embed_texts(["a red shoe", "a cat"])
    assert t.shape == (2, 64) and not t.requires_grad
    assert tiny_model.training, "embedding must not change the module's mode"


def test_domain_embedding_separates_domains(tiny_model):
    x = torch.randn(2, 3, 48, 48)
    assert not torch.allclose(tiny_model.embed_photos(x).global_, tiny_model.embed_sketches(x).global_)


def test_ablation_switches(random_batch):
    model = create_model("tiny", seed=0, overrides={"loss": "triplet", "use_local": False, "use_weighting": False})
    model.set_class_names(["cat", "dog", "car", "house"])
    out = model(**random_batch())
    assert model.local_block is None
    assert torch.equal(out["weights"], torch.ones(4))
    with pytest.raises(ModelError, match="unknown model config keys"):
        create_model("tiny", overrides={"use_wieghting": False})


def test_presets_and_weight_errors():
    assert {"tiny", "tiny_timm", "vit_b16", "vit_b16_timm"} <= set(list_presets())
    with pytest.raises(ModelError, match="unknown model preset"):
        create_model("nope")
    with pytest.raises(WeightsUnavailableError, match="not found"):
        create_model("tiny", pretrained="/no/such/weights.pt")
    with pytest.raises(WeightsUnavailableError, match="unknown pretrained tag"):
        create_model("vit_b16", pretrained="not-a-tag")


def test_pretrained_local_file_loads(tmp_path):
    from safetensors.torch import save_file

    source = create_model("tiny", seed=1, overrides={"conv_stem": False})
    clip_state = {f"visual.{k}": v.contiguous() for k, v in source.visual.visual.state_dict().items()}
    clip_state.update({k: v.contiguous() for k, v in source.clip.state_dict().items()})
    save_file(clip_state, tmp_path / "clip.safetensors")
    model = create_model("tiny", pretrained=str(tmp_path / "clip.safetensors"), seed=2, overrides={"conv_stem": False})
    assert torch.equal(model.visual.visual.conv1.weight, source.visual.visual.conv1.weight)


def test_frozen_backbone_trains_only_the_heads(random_batch):
    from dmwan_qdrant.model import create_model

    model = create_model("tiny", overrides={"freeze_backbone": True}, seed=0)
    model.set_class_names(["cat", "dog", "car", "house"])
    model.train()
    assert not model.visual.training and model.global_head.training
    before = {k: v.clone() for k, v in model.visual.state_dict().items()}
    b = random_batch()
    out = model(b["sketch"], b["photo"], b["neg_photo"], b["neg_sketch"], b["labels"], b["neg_labels"], b["sample_ids"])
    out["loss"].backward()
    assert all(p.grad is None for p in model.visual.parameters())
    assert model.global_head.weight.grad is not None
    after = model.visual.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics too


def test_a_cpu_batch_runs_in_chunks_that_give_the_vectors_of_one_pass(tiny_model, monkeypatch):
    from dmwan_qdrant.model import dmwan

    images = torch.rand(7, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    whole = tiny_model.embed_photos(images)  # 48 px: chunks of 88, one pass
    calls = []
    encode = tiny_model.encode
    monkeypatch.setattr(dmwan, "cpu_chunk", lambda size: 3)
    monkeypatch.setattr(tiny_model, "encode", lambda x, d: calls.append(len(x)) or encode(x, d))
    chunked = tiny_model.embed_photos(images)
    assert calls == [3, 3, 1]
    torch.testing.assert_close(chunked.global_, whole.global_, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked.tokens, whole.tokens, atol=1e-5, rtol=1e-5)
