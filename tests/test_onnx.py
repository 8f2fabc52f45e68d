"""ONNX export and the torch-free runtime: the graphs equal torch, either runtime searches what
the other filled, and ingest, query and serve run where torch cannot be imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from cli_helpers import dmwan, one_line_error  # noqa: E402
from serve_helpers import SHAPES, ServeProcess, shape  # noqa: E402

BLOCKED = ("torch", "torchvision", "open_clip", "timm", "safetensors")
BLOCKER = f'''import sys
class _NoTorch:
    """A search-only install: these packages are not there."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _NoTorch())
'''


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A seeded tiny bundle (text tower included) exported to ONNX, photos in label folders and
    a sketch of each shape."""
    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.runtime.export import export_onnx

    root = tmp_path_factory.mktemp("onnx")
    model = create_model("tiny", seed=0)
    model.set_class_names(list(SHAPES))
    bundle = save_model(model, root / "bundle")
    report = export_onnx(bundle)
    for kind in SHAPES:
        (root / "photos" / kind).mkdir(parents=True)
        for i in range(6):
            shape(kind, i, sketch=False).save(root / "photos" / kind / f"{kind}{i}.png")
        shape(kind, 9, sketch=True).save(root / f"{kind}.png")
    return {"root": root, "bundle": bundle, "report": report, "sketches": [root / f"{k}.png" for k in SHAPES]}


def no_torch_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a child process in which torch and the model libraries are missing."""
    (tmp_path / "blocker").mkdir(exist_ok=True)
    (tmp_path / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "blocker"), os.environ.get("PYTHONPATH", "")])}


def run_cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dmwan_qdrant.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_export_writes_checked_graphs_that_keep_the_fingerprint(exported):
    from dmwan_qdrant.model import read_bundle_record
    from dmwan_qdrant.runtime.graphs import read_manifest

    report, bundle = exported["report"], exported["bundle"]
    assert report.worst_cosine >= 0.9999 and set(report.graphs) == {"visual", "text"}
    manifest = read_manifest(bundle, read_bundle_record(bundle), verify=True)
    assert manifest["fingerprint"] == read_bundle_record(bundle)["fingerprint"]
    assert manifest["check"]["worst_cosine"] == report.worst_cosine and manifest["quantize"] is None


def test_onnx_encoder_equals_torch_on_real_images(exported):
    from dmwan_qdrant.encoder import load_bundle, model_record

    torch_model = load_bundle(exported["bundle"], "cpu", runtime="torch")
    onnx_model = load_bundle(exported["bundle"], "cpu", runtime="onnx")
    assert onnx_model.runtime == "onnx" and model_record(onnx_model) == model_record(torch_model)
    photos = [Image.open(p).convert("RGB") for p in sorted((exported["root"] / "photos").rglob("*.png"))]
    sketches = [Image.open(p).convert("RGB") for p in exported["sketches"]]
    for domain, images in (("photo", photos), ("sketch", sketches)):
        # The same numbers reach both encoders: one preprocessing definition.
        for im in images[:3]:
            np.testing.assert_array_equal(torch_model.transform(domain)(im).numpy(), onnx_model.transform(domain)(im))
        embed = "embed_photos" if domain == "photo" else "embed_sketches"
        a, b = getattr(torch_model, embed)(images), getattr(onnx_model, embed)(images)
        assert (a.global_.numpy() * b.global_).sum(-1).min() > 0.9999
        np.testing.assert_allclose(a.tokens.numpy(), b.tokens, atol=1e-4)
    texts = ["a circle", "a square drawn in pencil"]
    assert (torch_model.embed_texts(texts).numpy() * onnx_model.embed_texts(texts)).sum(-1).min() > 0.9999


def test_a_cpu_batch_runs_in_chunks_that_give_the_vectors_of_one_pass(exported, monkeypatch):
    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.runtime import onnx_encoder

    model = load_bundle(exported["bundle"], "cpu", runtime="onnx")
    photos = [Image.open(p).convert("RGB") for p in sorted((exported["root"] / "photos").rglob("*.png"))[:7]]
    whole = model.embed_photos(photos)
    assert onnx_encoder.cpu_chunk(48) == 88 and onnx_encoder.cpu_chunk(160) == 8 and onnx_encoder.cpu_chunk(224) == 4
    runs = []
    monkeypatch.setattr(onnx_encoder, "cpu_chunk", lambda size: 3)
    monkeypatch.setattr(model, "_run_visual", lambda images, domain, run=model._run_visual: runs.append(len(images))
                        or run(images, domain))
    chunked = model.embed_photos(photos)
    assert runs == [3, 3, 1]
    np.testing.assert_allclose(chunked.global_, whole.global_, atol=1e-6)
    np.testing.assert_allclose(chunked.tokens, whole.tokens, atol=1e-6)


def test_tokenizer_equals_open_clips():
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    from dmwan_qdrant.runtime.tokenizer import ClipTokenizer

    vocab = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    texts = ["a red shoe", "A Photo of a CAT!!", "Straße naïve café 123 ½", "emoji 😀 &amp; html", " lots\n\tof space ",
             "don't you'll we've", "x" * 400, "中文 日本語", "hello_world foo-bar", ""]
    np.testing.assert_array_equal(ClipTokenizer(vocab, 77)(texts), SimpleTokenizer(context_length=77)(texts).numpy())


def test_token_pooling_matrix_equals_adaptive_pooling():
    import torch.nn.functional as F

    from dmwan_qdrant.model.dmwan import pooling_matrix

    grid = torch.randn(2, 5, 14, 14)  # ViT-B/16's grid to 4x4 tokens: windows that overlap
    want = F.adaptive_avg_pool2d(grid, 4).flatten(2).transpose(1, 2)
    got = torch.matmul(pooling_matrix((14, 14), 4), grid.flatten(2).transpose(1, 2))
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("preset", ["tiny_timm", "efficientnet_lite0"])
def test_export_of_the_other_backbones(tmp_path, preset):
    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.runtime.export import export_onnx

    model = create_model(preset, pretrained=None, seed=0)
    bundle = save_model(model, tmp_path / "b")
    report = export_onnx(bundle)
    assert report.worst_cosine >= 0.9999
    assert set(report.graphs) == ({"visual", "text"} if model.clip is not None else {"visual"})


def test_either_runtime_searches_what_the_other_filled(exported, tmp_path, capsys):
    store, photos, bundle = tmp_path / "store", exported["root"] / "photos", exported["bundle"]
    for name, runtime in (("by_torch", "torch"), ("by_onnx", "onnx")):
        code, _, err = dmwan(capsys, "ingest", photos, "-c", name, "-m", bundle, "--store", store, "--runtime",
                             runtime, "--batch-size", "4", "--label-from-folder")
        assert code == 0, err

    def top5(collection, runtime, *query):
        code, out, err = dmwan(capsys, "query", *query, "-c", collection, "--store", store, "-k", 5, "--json",
                               "--runtime", runtime)
        assert code == 0, err
        return [[r["id"] for r in q["results"]] for q in json.loads(out)["queries"]]

    for collection in ("by_torch", "by_onnx"):
        for query in (exported["sketches"], ["--text", "a circle"], ["--photo", photos / "circle" / "circle0.png"]):
            assert top5(collection, "onnx", *query) == top5(collection, "torch", *query)
    assert top5("by_onnx", "torch", *exported["sketches"]) == top5("by_torch", "onnx", *exported["sketches"])


def test_a_search_only_bundle_has_no_torch_weights(exported, tmp_path, capsys):
    slim = tmp_path / "slim"
    code, out, err = dmwan(capsys, "model", "export", exported["bundle"], "-o", slim)
    assert code == 0, err
    assert not (slim / "model.safetensors").exists() and (slim / "onnx" / "visual.onnx").is_file()
    code, _, err = dmwan(capsys, "ingest", exported["root"] / "photos", "-c", "p", "-m", exported["bundle"],
                         "--store", tmp_path / "s", "--runtime", "torch")
    assert code == 0, err
    code, out, err = dmwan(capsys, "query", exported["sketches"][0], "-c", "p", "-m", slim, "--store", tmp_path / "s")
    assert code == 0 and "circle" in out, err
    code, _, err = dmwan(capsys, "query", exported["sketches"][0], "-c", "p", "-m", slim, "--store", tmp_path / "s",
                         "--runtime", "torch")
    from dmwan_qdrant.errors import CheckpointError

    assert code == CheckpointError.exit_code and "search-only bundle" in one_line_error(err) and "--runtime onnx" in err


def test_bad_runtimes_and_bad_graphs_are_one_line_errors(exported, tmp_path, capsys):
    from dmwan_qdrant.model import create_model, save_model

    plain = save_model(create_model("tiny", seed=1), tmp_path / "plain")
    store = tmp_path / "s"
    code, _, err = dmwan(capsys, "ingest", exported["root"] / "photos", "-c", "p", "-m", plain, "--store", store,
                         "--runtime", "onnx")
    assert code == 2 and "has no ONNX graphs" in one_line_error(err) and "dmwan model export" in err
    from dmwan_qdrant.store import open_store

    with open_store(path=store) as st:
        assert st.list_collections() == []  # refused before the collection was made
    code, _, err = dmwan(capsys, "ingest", exported["root"] / "photos", "-c", "p", "-m", plain, "--store", store,
                         "--runtime", "tensorflow")
    assert code == 2 and "unknown runtime" in one_line_error(err)
    # Graphs of other weights, and a truncated graph, are refused before onnxruntime reads them.
    other = tmp_path / "other"
    shutil.copytree(exported["bundle"], other)
    shutil.copy(plain / "config.json", other / "config.json")
    shutil.copy(plain / "model.safetensors", other / "model.safetensors")
    code, _, err = dmwan(capsys, "ingest", exported["root"] / "photos", "-c", "p", "-m", other, "--store", store,
                         "--runtime", "onnx")
    assert code != 0 and "graphs of other weights" in one_line_error(err)
    cut = tmp_path / "cut"
    shutil.copytree(exported["bundle"], cut)
    graph = cut / "onnx" / "visual.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    code, _, err = dmwan(capsys, "ingest", exported["root"] / "photos", "-c", "q", "-m", cut, "--store", store,
                         "--runtime", "onnx")
    assert code != 0 and "truncated" in one_line_error(err)


def test_int8_export_is_smaller_and_close(exported, tmp_path, capsys):
    out = tmp_path / "int8"
    code, text, err = dmwan(capsys, "model", "export", exported["bundle"], "-o", out, "--quantize", "int8", "--json")
    assert code == 0, err
    report = json.loads(text)
    assert report["quantize"] == "int8" and report["worst_cosine"] >= 0.98
    assert report["graphs"]["visual"] < exported["report"].graphs["visual"]
    code, text, err = dmwan(capsys, "model", "info", out)
    assert code == 0 and "int8" in text


def test_query_ingest_and_serve_run_without_torch(exported, tmp_path):
    env = no_torch_env(tmp_path)
    assert run_cli("query", "--help", env=env).returncode == 0
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0  # the blocker works
    store, photos = tmp_path / "store", exported["root"] / "photos"
    # Decoding in a process pool (two batches, one worker), the encoder on onnxruntime.
    r = run_cli("ingest", photos, "-c", "pics", "-m", exported["bundle"], "--store", store, "--batch-size", 6,
                "--decode-workers", 1, "--label-from-folder", env=env)
    assert r.returncode == 0 and "12 added" in r.stdout, r.stderr
    r = run_cli("query", *exported["sketches"], "-c", "pics", "--store", store, "--json", "-k", 3, env=env)
    assert r.returncode == 0, r.stderr
    assert [len(q["results"]) for q in json.loads(r.stdout)["queries"]] == [3, 3]
    r = run_cli("query", "--text", "a square", "-c", "pics", "--store", store, "--paths", env=env)
    assert r.returncode == 0 and len(r.stdout.split()) == 10, r.stderr
    r = run_cli("info", "--json", "--store", store, env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["versions"]["onnxruntime"], r.stderr
    # What needs torch says so in one line.
    for args in (["model", "create", "--preset", "tiny", "-o", tmp_path / "m"], ["model", "export", exported["bundle"]],
                 ["query", "--text", "x", "-c", "pics", "--store", store, "--runtime", "torch"]):
        r = run_cli(*args, env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "not installed here" in one_line_error(r.stderr)
    server = ServeProcess("-c", "pics", "--store", store, env={"PYTHONPATH": env["PYTHONPATH"]})
    try:
        import httpx

        files = [("sketch", (p.name, p.read_bytes(), "image/png")) for p in exported["sketches"]]
        answer = httpx.post(server.url + "/collections/pics/search", params={"k": 3}, files=files, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["queries"]) == 2
        assert httpx.get(server.url + "/collections/pics", timeout=30).json()["runtime"] == "onnx"
    finally:
        code, rest = server.stop()
    assert code == 0, rest


def test_an_onnx_query_imports_no_torch(exported, tmp_path, capsys):
    """With torch installed, too: the ONNX path never imports it (`python -X importtime`)."""
    store = tmp_path / "store"
    code, _, err = dmwan(capsys, "ingest", exported["root"] / "photos", "-c", "pics", "-m", exported["bundle"],
                         "--store", store)
    assert code == 0, err
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "dmwan_qdrant.cli", "query", exported["sketches"][0],
                        "-c", "pics", "--store", store, "--runtime", "onnx"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "onnxruntime" in imported
    assert [m for m in imported if m.split(".")[0] in BLOCKED] == []


def test_auto_keeps_torch_on_a_gpu_that_onnxruntime_cannot_use(exported, monkeypatch):
    import onnxruntime

    import dmwan_qdrant.runtime as runtime

    bundle = exported["bundle"]
    assert runtime.resolve_runtime("auto", bundle, "cpu") == "onnx"
    assert runtime.resolve_runtime("auto", bundle, "mps") == "torch"
    monkeypatch.setattr(runtime, "gpu_visible", lambda: True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert runtime.resolve_runtime("auto", bundle) == "torch" and runtime.resolve_runtime("onnx", bundle) == "onnx"
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.resolve_runtime("auto", bundle) == "onnx"


class KillOnOddSize:
    """A photo transform that SIGKILLs the decoding worker on a 61x67 image (picklable)."""

    def __init__(self, inner) -> None:
        self.inner, self.size = inner, inner.size

    def __call__(self, image):
        if image.size == (61, 67):
            os.kill(os.getpid(), 9)
        return self.inner(image)


def test_a_killed_pool_worker_stops_the_ingest_in_one_line_and_a_rerun_finishes(exported, tmp_path, monkeypatch):
    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.errors import DmwanError
    from dmwan_qdrant.ingest import ingest
    from dmwan_qdrant.store import open_store

    photos = tmp_path / "photos"
    shutil.copytree(exported["root"] / "photos", photos)
    Image.new("RGB", (61, 67), "red").save(photos / "zz_killer.png")  # the last batch
    model = load_bundle(exported["bundle"], "cpu", runtime="onnx")
    plain = model.transform
    monkeypatch.setattr(model, "transform", lambda domain, train=False: KillOnOddSize(plain(domain)))
    with open_store(path=tmp_path / "store") as store:
        with pytest.raises(DmwanError) as info:
            ingest([photos], store, "pics", model, batch_size=4, num_workers=1)
        message = str(info.value)
        assert message.startswith("a decoding worker died") and "run the same command again" in message
        assert "\n" not in message and 0 < store.count("pics") < 13
    monkeypatch.undo()
    with open_store(path=tmp_path / "store") as store:
        report = ingest([photos], store, "pics", model, batch_size=4, num_workers=1)
        assert report.unchanged + report.added == 13 and store.count("pics") == 13
