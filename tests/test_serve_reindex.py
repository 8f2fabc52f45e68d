"""`dmwan serve` on a Qdrant server follows a model swap: after `collections reindex` moves the
collection to another model, its searches are answered with the new model, none fails."""

from __future__ import annotations

import warnings

from fastapi.testclient import TestClient
from qdrant_stub import QdrantStub
from serve_helpers import SHAPES, shape

from dmwan_qdrant.encoder import load_bundle
from dmwan_qdrant.ingest import ingest
from dmwan_qdrant.ingest.reindex import reindex_collection
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.search import search_sketches
from dmwan_qdrant.server.app import ServeSettings, create_app
from dmwan_qdrant.server.ingest import TOKEN_HEADER
from dmwan_qdrant.server.service import SearchService
from dmwan_qdrant.store import ServerStore


def test_a_served_collection_follows_its_reindex(tmp_path):
    a = load_bundle(save_model(create_model("tiny", seed=0), tmp_path / "a"), "cpu")
    b = load_bundle(save_model(create_model("tiny", seed=1, overrides={"token_dim": 16}), tmp_path / "b"), "cpu")
    for kind in SHAPES:
        (tmp_path / "photos" / kind).mkdir(parents=True)
        for i in range(4):
            shape(kind, i, sketch=False).save(tmp_path / "photos" / kind / f"{kind}{i}.png")
    shape("circle", 9, sketch=True).save(tmp_path / "sketch.png")
    (tmp_path / "more").mkdir()
    shape("square", 30, sketch=False).save(tmp_path / "more" / "late.png")
    with QdrantStub() as stub, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served, other = ServerStore(stub.url, retries=0), ServerStore(stub.url, retries=0)
        ingest([tmp_path / "photos"], served, "pics", a, num_workers=0)
        service = SearchService(served, ["pics"])
        client = TestClient(create_app(service, ServeSettings(ingest_token="tok")))
        files = {"sketch": ("s.png", (tmp_path / "sketch.png").read_bytes(), "image/png")}
        before = client.post("/collections/pics/search", params={"k": 3, "rerank": "false"}, files=files)
        assert before.status_code == 200, before.text
        reindex_collection(other, "pics", b, num_workers=0)  # another process swaps the model
        import time

        time.sleep(1.1)  # the served store trusts a collection record for a second
        after = client.post("/collections/pics/search", params={"k": 3, "rerank": "false"}, files=files)
        assert after.status_code == 200, after.text
        want = search_sketches(other, "pics", b, [tmp_path / "sketch.png"], k=3, rerank=False)[0]
        assert [r["id"] for r in after.json()["queries"][0]["results"]] == [r.id for r in want]
        assert service.model("pics").fingerprint == b.fingerprint
        # An ingest through the server embeds with the new model too.
        r = client.post("/collections/pics/ingest", json={"paths": [str(tmp_path / "more")]}, headers={TOKEN_HEADER: "tok"})
        assert r.status_code == 200 and r.json()["added"] == 1, r.text
        other.close()
        client.close()


def test_reindex_refuses_an_embedded_store_held_by_serve(tmp_path):
    import subprocess
    import sys

    from serve_helpers import ServeProcess, make_collection

    env = make_collection(tmp_path)
    other = save_model(create_model("tiny", seed=1), tmp_path / "other")
    server = ServeProcess("-c", "pics", "--store", env["store"])
    try:
        done = subprocess.run([sys.executable, "-m", "dmwan_qdrant.cli", "collections", "reindex", "pics", "--model",
                               str(other), "--store", str(env["store"])], capture_output=True, text=True, timeout=120)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 7 and len(errors) == 1 and "stop the server" in errors[0], done.stderr
        assert "Traceback" not in done.stderr
    finally:
        server.stop()
