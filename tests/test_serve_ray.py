"""The search server on Ray Serve (`dmwan_qdrant.server.ray_app`) answers as `dmwan serve` does.

One local Ray instance for the module (2 CPUs, no dashboard, its own temp dir), one CPU replica on
an embedded store that a CLI ingest filled with a seeded tiny model. An embedded store opens in
one process only, so the same searches run first through the in-process app (`create_app` over a
`SearchService`, the app `dmwan serve` runs), which then closes the store, and only then through
Ray Serve's HTTP proxy on 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from serve_helpers import SHAPES, make_collection, shape

pytest.importorskip("ray.serve")

pytestmark = pytest.mark.slow

BATCH_WAIT_S = 0.25  # long enough that concurrent requests share a forward pass on busy cores


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def searches(sketches: dict[str, bytes]) -> dict[str, dict]:
    """The search calls compared, as keyword arguments of ``client.post``."""
    data_url = "data:image/png;base64," + base64.b64encode(sketches["square"]).decode()
    return {
        "multipart": {"files": [("sketch", ("circle.png", sketches["circle"], "image/png")),
                                ("sketch", ("square.png", sketches["square"], "image/png"))],
                      "params": {"k": 5}},
        "json-base64": {"json": {"sketches": [base64.b64encode(sketches["circle"]).decode(), data_url], "k": 4,
                                 "filter": ["label=square"], "prefetch": 6}},
        "no-rerank": {"json": {"sketches": [base64.b64encode(sketches["square"]).decode()], "rerank": False}},
        "text": {"json": {"text": "a blue circle", "k": 3}},
    }


SEARCH = "/collections/pics/search"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Collection 'pics' (8 photos) ingested by the CLI, and the in-process app's answers."""
    from fastapi.testclient import TestClient

    from dmwan_qdrant.server.app import create_app
    from dmwan_qdrant.server.service import SearchService
    from dmwan_qdrant.store import open_store

    made = make_collection(tmp_path_factory.mktemp("rayserve"), photos_per_shape=4)
    store = made["store"]
    sketches = {kind: png(shape(kind, 9, sketch=True)) for kind in SHAPES}
    calls = searches(sketches)
    st = open_store(path=store, read_only=True)
    try:
        service = SearchService(st, ["pics"])
    except BaseException:
        st.close()
        raise
    with TestClient(create_app(service)) as client:  # leaving closes the service and the store
        answers = {}
        for name, call in calls.items():
            res = client.post(SEARCH, **call)
            assert res.status_code == 200, (name, res.text)
            answers[name] = res.json()
    return {"store": store, "bundle": made["bundle"], "calls": calls, "answers": answers}


@pytest.fixture(scope="module")
def ray_url(env):
    """The base URL of Ray Serve's proxy, serving 'pics' from the store (one CPU replica)."""
    import ray
    from ray import serve

    from dmwan_qdrant.server.ray_app import build_app

    temp = Path("/tmp") / f"dmwan-rayserve-{os.getpid()}"  # short: Ray's socket paths
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=str(temp),
             _metrics_export_port=free_port())
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = build_app({"collections": "pics", "store": str(env["store"]), "num_cpus": "0.5",
                         "max_batch_size": "8", "batch_wait_timeout_s": str(BATCH_WAIT_S)})
        serve.run(app, name="dmwan", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def client(ray_url):
    import httpx

    with httpx.Client(base_url=ray_url, timeout=60) as c:
        yield c


def _same_answer(got: dict, want: dict) -> None:
    got, want = dict(got), dict(want)
    assert isinstance(got.pop("took_ms"), (int, float)) and want.pop("took_ms") is not None
    got_q, want_q = got.pop("queries"), want.pop("queries")
    assert got == want  # collection, mode, rerank
    assert len(got_q) == len(want_q)
    for g, w in zip(got_q, want_q):
        assert [r["id"] for r in g["results"]] == [r["id"] for r in w["results"]]
        for rg, rw in zip(g["results"], w["results"]):
            assert rg["score"] == pytest.approx(rw["score"], abs=1e-5)
            assert {k: v for k, v in rg.items() if k != "score"} == {k: v for k, v in rw.items() if k != "score"}


# ---------------------------------------------------------------- through Ray Serve


@pytest.mark.parametrize("name", ["multipart", "json-base64", "no-rerank", "text"])
def test_same_answers_as_dmwan_serve(env, client, name):
    res = client.post(SEARCH, **env["calls"][name])
    assert res.status_code == 200, res.text
    want = env["answers"][name]
    assert want["queries"] and all(q["results"] for q in want["queries"])
    _same_answer(res.json(), want)


def test_ready_health_photo_and_thumbnail(env, client):
    res = client.get("/readyz")
    assert res.status_code == 200 and res.json() == {"status": "ready", "collections": ["pics"]}
    assert client.get("/healthz").json() == {"status": "ok"}
    first = env["answers"]["multipart"]["queries"][0]["results"][0]
    photo = client.get(first["photo_url"])
    assert photo.status_code == 200 and photo.content == Path(first["path"]).read_bytes()
    thumb = client.get(first["thumbnail_url"], params={"size": 32})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_errors_are_one_line_json(client):
    res = client.post(SEARCH, files={"sketch": ("notes.png", b"not an image at all", "image/png")})
    assert res.status_code == 415, res.text
    body = res.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "image" in body["error"]
    res = client.post("/collections/nope/search", json={"text": "x"})
    assert res.status_code == 404 and "not served" in res.json()["error"]
    res = client.post(SEARCH, json={"text": "x", "k": 0})
    assert res.status_code == 422 and set(res.json()) == {"error"}


def test_concurrent_searches_share_a_serve_batch(env, client):
    """Requests that arrive together go through one `search_batch` call (``@serve.batch``)."""

    def batched() -> tuple[float, float]:
        text = client.get("/metrics").text
        values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                      if line.startswith(("dmwan_batch_size_sum", "dmwan_batch_size_count")))
        return float(values.get("dmwan_batch_size_sum", 0)), float(values.get("dmwan_batch_size_count", 0))

    before_sum, before_count = batched()
    n = 4
    barrier, results = threading.Barrier(n), [None] * n

    def one(i: int) -> None:
        barrier.wait()
        results[i] = client.post(SEARCH, **env["calls"]["no-rerank"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for res in results:
        assert res is not None and res.status_code == 200
        _same_answer(res.json(), env["answers"]["no-rerank"])
    after_sum, after_count = batched()
    assert after_count - before_count == n
    assert after_sum - before_sum > n, "no two of the concurrent requests shared a forward pass"


def test_an_onnx_replica_answers_as_the_torch_one(env, client, tmp_path_factory):
    """The same app with ``runtime=onnx`` and a search-only bundle: the same answers (last of the
    Ray tests: it replaces the deployment)."""
    pytest.importorskip("onnxruntime")
    from ray import serve

    from dmwan_qdrant.runtime.export import export_onnx
    from dmwan_qdrant.server.ray_app import build_app

    slim = tmp_path_factory.mktemp("onnx") / "search-bundle"
    export_onnx(env["bundle"], slim)
    serve.delete("dmwan")  # the torch replica lets the store go before the new one opens it
    serve.run(build_app({"collections": "pics", "store": str(env["store"]), "num_cpus": "0.5", "model": str(slim),
                         "runtime": "onnx"}), name="dmwan", route_prefix="/")
    assert client.get("/collections/pics").json()["runtime"] == "onnx"
    for name in ("multipart", "json-base64", "text"):
        res = client.post(SEARCH, **env["calls"][name])
        assert res.status_code == 200, res.text
        _same_answer(res.json(), env["answers"][name])


# ---------------------------------------------------------------- options (no Ray started)


def test_import_loads_no_torch():
    code = ("import sys, dmwan_qdrant.server.ray_app as r; "
            "r.build_app({'collections': 'pics', 'store': '/nonexistent'}); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "import ray; assert not ray.is_initialized()")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_options_from_serve_run_strings(tmp_path, monkeypatch):
    from dmwan_qdrant.server.ray_app import build_app, parse_options

    monkeypatch.chdir(tmp_path)
    opts = parse_options({"collections": "a, b,a", "store": "rel/store", "cors_origins": "https://x.org,https://y.org",
                          "max_upload_mb": "8", "num_cpus": "0.5", "max_batch_size": "4",
                          "batch_wait_timeout_s": "0.01", "device": "cpu", "runtime": "onnx"})
    assert opts.collections == ("a", "b") and opts.store == str(tmp_path / "rel/store") and opts.runtime == "onnx"
    assert opts.cors_origins == ("https://x.org", "https://y.org") and opts.max_upload_mb == 8.0
    assert opts.deployment_options() == {"max_ongoing_requests": 32, "num_replicas": 1,
                                         "ray_actor_options": {"num_cpus": 0.5}}
    opts = parse_options({"collections": ["a"], "url": "http://qdrant:6333", "autoscaling": "1-4", "num_gpus": 1,
                          "device": "cuda", "max_batch_size": 32})
    assert opts.deployment_options() == {
        "max_ongoing_requests": 64, "autoscaling_config": {"min_replicas": 1, "max_replicas": 4},
        "ray_actor_options": {"num_gpus": 1.0}}
    assert parse_options({"collections": "a", "store": "s", "model": "hf-hub:org/name@v1"}).model == "hf-hub:org/name@v1"
    assert parse_options({"collections": "a", "store": "s", "model": "m"}).model == str(tmp_path / "m")
    app = build_app({"collections": "a", "url": "http://qdrant:6333", "num_replicas": "3"})
    from ray.serve import Application

    assert isinstance(app, Application)


@pytest.mark.parametrize("args, words", [
    ({}, "collections=NAME"),
    ({"collections": "a"}, "store=PATH"),
    ({"collections": "a", "store": "s", "url": "http://q:6333"}, "not both"),
    ({"collections": "a", "store": "s", "num_replicas": 2}, "one process only"),
    ({"collections": "a", "store": "s", "autoscaling": "1-2"}, "one process only"),
    ({"collections": "a", "url": "ftp://q"}, "invalid Qdrant URL"),
    ({"collections": "a", "url": "http://q", "num_replicas": "two"}, "num_replicas must be an integer"),
    ({"collections": "a", "url": "http://q", "num_replicas": 2, "autoscaling": "1-2"}, "not both"),
    ({"collections": "a", "url": "http://q", "autoscaling": "3-1"}, "over max_replicas"),
    ({"collections": "a", "url": "http://q", "autoscaling": {"max_replicas": 2, "bogus": 1}}, "unknown field 'bogus'"),
    ({"collections": "a", "url": "http://q", "num_gpus": -1}, "num_gpus must be at least 0"),
    ({"collections": "a", "url": "http://q", "device": "cuda"}, "needs num_gpus"),
    ({"collections": "a", "url": "http://q", "max_batch_size": "0"}, "max_batch_size must be at least 1"),
    ({"collections": "a", "url": "http://q", "batch_wait_timeout_s": "soon"}, "must be a number"),
    ({"collections": "a", "store": "s", "qdrant_api_key": "k"}, "goes with url"),
    ({"collections": "a,b", "store": "s", "model": "m"}, "single collection"),
    ({"collections": "a", "store": "s", "replicas": 1}, "unknown option 'replicas'"),
    ({"collections": "a", "store": "s", "runtime": "tensorrt"}, "runtime=tensorrt is not one of auto, torch, onnx"),
])
def test_bad_options_are_one_line_usage_errors(args, words):
    from dmwan_qdrant.errors import UsageError
    from dmwan_qdrant.server.ray_app import build_app

    with pytest.raises(UsageError) as info:
        build_app(args)
    assert words in str(info.value) and "\n" not in str(info.value)
