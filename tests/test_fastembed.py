"""DMWAN bundles as FastEmbed models in qdrant-client's inference API: the same vectors and the
same top 10 as `dmwan`, in the local modes and against a server, in both directions."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("fastembed")
pytest.importorskip("onnxruntime")

from cli_helpers import dmwan  # noqa: E402
from qdrant_client import QdrantClient, models  # noqa: E402
from serve_helpers import SHAPES, shape  # noqa: E402

from dmwan_qdrant.errors import UsageError  # noqa: E402
from dmwan_qdrant.fastembed import (  # noqa: E402
    SHIPPED_NAME,
    collection_params,
    create_collection,
    photo_point,
    register,
    rerank_query,
    sketch_query,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A seeded tiny bundle (text tower included) exported to ONNX, 20 photos in label folders,
    a sketch of each shape (one a transparent PNG)."""
    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.runtime.export import export_onnx

    root = tmp_path_factory.mktemp("fastembed")
    model = create_model("tiny", seed=0)
    model.set_class_names(list(SHAPES))
    bundle = save_model(model, root / "bundle")
    export_onnx(bundle)
    for kind in SHAPES:
        (root / "photos" / kind).mkdir(parents=True)
        for i in range(10):
            shape(kind, i, sketch=False).save(root / "photos" / kind / f"{kind}{i}.png")
    shape("circle", 99, sketch=True).save(root / "circle.png")
    square = shape("square", 99, sketch=True).convert("RGBA")
    alpha = np.where(np.asarray(square.convert("L")) > 128, 0, 255).astype(np.uint8)
    square.putalpha(__import__("PIL.Image", fromlist=["Image"]).fromarray(alpha))  # white -> transparent
    square.save(root / "square.png")
    return {"root": root, "bundle": bundle, "photos": sorted((root / "photos").rglob("*.png")),
            "sketches": [root / "circle.png", root / "square.png"]}


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_vectors_equal_the_dmwan_paths(exported):
    from fastembed import ImageEmbedding

    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.ingest.decode import decode_photo
    from dmwan_qdrant.search.core import embed_sketch_files

    name = register(exported["bundle"])
    assert register(exported["bundle"]) == name and name.startswith("dmwan/bundle-")
    for runtime in ("onnx", "torch"):
        model = load_bundle(exported["bundle"], device="cpu", runtime=runtime)
        want_g, want_t = embed_sketch_files(model, exported["sketches"])
        got_g = np.stack(list(ImageEmbedding(name, domain="sketch").embed([str(p) for p in exported["sketches"]])))
        got_t = np.stack(list(ImageEmbedding(name, domain="sketch", output="tokens").embed(exported["sketches"])))
        assert _cos(got_g, want_g).min() >= 0.9999 and _cos(got_t, want_t).min() >= 0.9999
        tf = model.transform("photo")
        items = [decode_photo((str(p), 0, 0), tf, 10**8) for p in exported["photos"][:4]]
        emb = model.embed_photos(np.stack([np.asarray(it["tensor"]) for it in items]))
        photos = np.stack(list(ImageEmbedding(name).embed(exported["photos"][:4], batch_size=3)))
        assert _cos(photos, np.asarray(emb.global_)).min() >= 0.9999


@pytest.mark.parametrize("where", ["memory", "path"])
def test_four_lines_in_the_local_modes(exported, tmp_path, where):
    """The issue's snippet, in qdrant-client's local modes: same top 10 as `dmwan query` over
    the same photos."""
    name = register(exported["bundle"])
    client = QdrantClient(":memory:") if where == "memory" else QdrantClient(path=str(tmp_path / "local"))
    create_collection(client, "shoes", name)
    client.upsert("shoes", [photo_point(p, name, label=p.parent.name) for p in exported["photos"]])
    hits = client.query_points("shoes", query=models.Image(image=str(exported["sketches"][0]), model=name,
                               options={"domain": "sketch"}), using="global", limit=10).points
    client.close()

    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.ingest.run import ingest
    from dmwan_qdrant.search.core import search_sketches
    from dmwan_qdrant.store.server import MemoryStore

    store = MemoryStore()
    model = load_bundle(exported["bundle"], device="cpu", runtime="onnx")
    ingest([exported["root"] / "photos"], store, "shoes", model, num_workers=0)
    want = search_sketches(store, "shoes", model, exported["sketches"][:1], k=10, rerank=False)[0]
    assert [str(h.id) for h in hits] == [r.id for r in want]
    assert np.allclose([h.score for h in hits], [r.score for r in want], atol=1e-4)
    assert hits[0].payload["label"] in SHAPES and hits[0].payload["path"] == want[0].path


class _Server:
    """Where a server test runs: the stub here, a real Qdrant server where QDRANT_URL is set
    (collections named uniquely there, and deleted after)."""

    def __init__(self, url: str, api_key: str | None, real: bool) -> None:
        self.url, self.api_key, self.real = url, api_key, real
        self.made: list[str] = []

    def name(self, base: str) -> str:
        import uuid

        name = f"{base}-{uuid.uuid4().hex[:8]}" if self.real else base
        self.made.append(name)
        return name

    def args(self) -> list[str]:
        return ["--url", self.url] + (["--api-key", self.api_key] if self.api_key else [])


@pytest.fixture(params=["stub", pytest.param("server", marks=pytest.mark.server)])
def stub(request):
    import os

    if request.param == "server":
        url = os.environ.get("QDRANT_URL")
        if not url:
            pytest.skip("QDRANT_URL is not set")
        server = _Server(url, os.environ.get("QDRANT_API_KEY"), real=True)
        yield server
        client = _client(url, server.api_key)
        for name in server.made:
            client.delete_collection(name)
        client.close()
        return
    from qdrant_stub import QdrantStub

    with QdrantStub() as s:
        yield _Server(s.url, None, real=False)


def _client(url: str, api_key: str | None = None) -> QdrantClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return QdrantClient(url=url, api_key=api_key, check_compatibility=False)


def _query_json(capsys, *args) -> list[dict]:
    code, out, err = dmwan(capsys, "query", *args, "--json")
    assert code == 0, err
    return json.loads(out)["queries"][0]["results"]


def test_dmwan_ingest_then_qdrant_client_search_on_a_server(exported, stub, capsys):
    """A collection filled by `dmwan ingest` on a server: qdrant-client finds the same top 10,
    plain and re-ranked in one call (the fused scores `dmwan query --rerank` prints)."""
    shoes = stub.name("shoes")
    code, _, err = dmwan(capsys, "ingest", exported["root"] / "photos", "--collection", shoes,
                         "--model", exported["bundle"], *stub.args(), "--label-from-folder")
    assert code == 0, err
    name = register(exported["bundle"])
    client = _client(stub.url, stub.api_key)
    for sketch in exported["sketches"]:
        plain = _query_json(capsys, sketch, "--collection", shoes, *stub.args(), "--no-rerank")
        hits = client.query_points(shoes, query=sketch_query(str(sketch), name), using="global", limit=10).points
        assert [str(h.id) for h in hits] == [r["id"] for r in plain]
        fused = _query_json(capsys, sketch, "--collection", shoes, *stub.args(), "--rerank")
        hits = client.query_points(shoes, **rerank_query(str(sketch), name, ef=128), limit=10).points
        assert [str(h.id) for h in hits] == [r["id"] for r in fused]
        assert np.allclose([h.score for h in hits], [r["score"] for r in fused], atol=1e-4)
        assert [r["id"] for r in fused] != [r["id"] for r in plain] or len(fused) < 2  # the re-rank re-orders
    client.close()


def test_qdrant_client_upsert_then_dmwan_query_on_a_server(exported, stub, capsys):
    """Photos upserted through qdrant-client with the registered model are found by `dmwan
    query`, and `dmwan ingest` of the same folder afterwards adds no duplicate."""
    name = register(exported["bundle"])
    mine_name = stub.name("mine")
    client = _client(stub.url, stub.api_key)
    client.create_collection(mine_name, **collection_params(name))
    client.upsert(mine_name, [photo_point(p, name, label=p.parent.name) for p in exported["photos"]])
    mine = client.query_points(mine_name, query=sketch_query(str(exported["sketches"][1]), name),
                               using="global", limit=10).points
    client.close()
    found = _query_json(capsys, exported["sketches"][1], "--collection", mine_name, *stub.args(), "--no-rerank")
    assert [r["id"] for r in found] == [str(h.id) for h in mine]
    assert found[0]["label"] in SHAPES and found[0]["path"].endswith(".png")
    code, _, err = dmwan(capsys, "ingest", exported["root"] / "photos", "--collection", mine_name, *stub.args())
    assert code == 0, err
    code, out, err = dmwan(capsys, "collections", "info", mine_name, *stub.args(), "--json")
    assert code == 0 and json.loads(out)["points"] == len(exported["photos"]), out + err


@pytest.mark.slow
def test_dmwan_serve_searches_what_qdrant_client_upserted(exported, stub):
    import httpx
    from serve_helpers import ServeProcess

    from dmwan_qdrant.fastembed import collection_model

    name = register(exported["bundle"])
    mine = stub.name("mine")
    client = _client(stub.url, stub.api_key)
    client.create_collection(mine, **collection_params(name))
    client.upsert(mine, [photo_point(p, name, label=p.parent.name) for p in exported["photos"]])
    assert collection_model(client, mine) == name
    want = client.query_points(mine, query=sketch_query(str(exported["sketches"][0]), name), using="global",
                               limit=5).points
    client.close()
    server = ServeProcess(*stub.args(), "--collection", mine)
    try:
        with open(exported["sketches"][0], "rb") as f:
            answer = httpx.post(server.url + f"/collections/{mine}/search", params={"k": 5, "rerank": "false"},
                                files={"sketch": ("s.png", f, "image/png")}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert [r["id"] for r in answer.json()["queries"][0]["results"]] == [str(h.id) for h in want]
    finally:
        server.stop()


def test_text_documents_use_the_text_tower(exported):
    from fastembed import TextEmbedding

    from dmwan_qdrant.encoder import load_bundle

    name = register(exported["bundle"])
    want = load_bundle(exported["bundle"], device="cpu", runtime="onnx").embed_texts(["a circle", "a square"])
    got = np.stack(list(TextEmbedding(name).embed(["a circle", "a square"])))
    assert _cos(got, want).min() >= 0.9999
    client = QdrantClient(":memory:")
    client.create_collection("shoes", **collection_params(name))
    client.upsert("shoes", [photo_point(p, name) for p in exported["photos"][:5]])
    hits = client.query_points("shoes", query=models.Document(text="a circle", model=name), using="global", limit=3)
    assert len(hits.points) == 3


def test_errors_are_one_line(exported, tmp_path):
    from fastembed import ImageEmbedding

    from dmwan_qdrant.model import create_model, save_model

    bare = save_model(create_model("tiny", seed=1), tmp_path / "bare")
    with pytest.raises(UsageError, match="dmwan model export"):
        register(bare)
    name = register(exported["bundle"])
    with pytest.raises(ValueError, match="domain='drawing' is not one of photo, sketch"):
        ImageEmbedding(name, domain="drawing")
    with pytest.raises(UsageError, match="taken by other weights"):
        register(SHIPPED_NAME.split("/")[1], name=name)


def test_shipped_model_without_torch(exported, tmp_path):
    """The snippet with the shipped model, in a process where torch cannot be imported."""
    from test_onnx import no_torch_env

    script = f"""
from qdrant_client import QdrantClient, models
from dmwan_qdrant.fastembed import SHIPPED_NAME, collection_params, photo_point
import glob, sys
client = QdrantClient(":memory:")
client.create_collection("shoes", **collection_params(SHIPPED_NAME))
client.upsert("shoes", [photo_point(p, SHIPPED_NAME) for p in sorted(glob.glob({str(exported['root'] / 'photos')!r} + "/*/*.png"))])
hits = client.query_points("shoes", query=models.Image(image={str(exported['sketches'][0])!r}, model=SHIPPED_NAME,
                           options={{"domain": "sketch"}}), using="global", limit=10)
assert "torch" not in sys.modules
print(len(hits.points), hits.points[0].payload["path"])
"""
    done = subprocess.run([sys.executable, "-c", script], env=no_torch_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "10"
