"""The HTTP API of `dmwan serve`, in process: the answers equal `dmwan_qdrant.search`, every bad
input is a 4xx with a one-line JSON error, photos are only the collection's own, and the
security defaults hold."""

from __future__ import annotations

import asyncio
import base64
import io
import os

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from dmwan_qdrant.cli.app import main
from dmwan_qdrant.search import search_sketches, search_text
from dmwan_qdrant.search.request import SearchRequest
from dmwan_qdrant.search.reranking import DEFAULT_RERANK
from dmwan_qdrant.server.app import ServeSettings, create_app
from dmwan_qdrant.server.service import SearchService
from dmwan_qdrant.store import open_store

from serve_helpers import make_collection


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    env = make_collection(tmp_path_factory.mktemp("serve"))
    try:  # a second collection in the same store: one server serves both
        main(["ingest", str(env["root"] / "photos" / "square"), "-c", "squares", "--store", str(env["store"]),
              "-m", str(env["bundle"])])
    except SystemExit as e:
        assert e.code in (0, None)
    store = open_store(path=env["store"], read_only=True)
    service = SearchService(store, ["pics", "squares"])
    model = service.model("pics")
    env["expected"] = search_sketches(store, "pics", model, env["sketches"], k=4)
    env["expected_plain"] = search_sketches(store, "pics", model, env["sketches"], k=3, rerank=False,
                                            filter={"label": "square"})
    env["expected_text"] = search_text(store, "pics", model, "a round thing", k=3)
    env["service"] = service
    env["client"] = TestClient(create_app(service))
    yield env
    store.close()


def ids(answer: dict) -> list[list[str]]:
    return [[r["id"] for r in q["results"]] for q in answer["queries"]]


def expected_ids(results) -> list[list[str]]:
    return [[r.id for r in res] for res in results]


def error_of(response: httpx.Response, status: int) -> str:
    """The one-line error of a response that must have ``status``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def files_of(*paths) -> list:
    return [("sketch", (p.name, p.read_bytes(), "image/png")) for p in paths]


def test_multipart_search_equals_the_library(served):
    r = served["client"].post("/collections/pics/search", params={"k": 4}, files=files_of(*served["sketches"]))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["mode"] == "sketch" and answer["rerank"] is DEFAULT_RERANK and answer["collection"] == "pics"
    assert ids(answer) == expected_ids(served["expected"])
    for q, exp in zip(answer["queries"], served["expected"]):
        for got, want in zip(q["results"], exp):
            assert got["rank"] == want.rank and got["score"] == pytest.approx(want.score, abs=1e-5)
            assert got["label"] == want.label and got["path"] == want.path and got["width"] == 48
            assert got["thumbnail_url"] == f"/collections/pics/photos/{want.id}/thumbnail"
            assert got["photo_url"] == f"/collections/pics/photos/{want.id}"


def test_base64_and_data_url_bodies_give_the_same_answer(served):
    raw = [base64.b64encode(p.read_bytes()).decode() for p in served["sketches"]]
    plain = served["client"].post("/collections/pics/search", json={"sketches": raw, "k": 4})
    data_url = served["client"].post("/collections/pics/search?k=4",
                                     json={"sketches": ["data:image/png;base64," + s for s in raw]})
    assert ids(plain.json()) == ids(data_url.json()) == expected_ids(served["expected"])


def test_options_as_query_parameters_or_json_fields(served):
    want = expected_ids(served["expected_plain"])
    q = served["client"].post("/collections/pics/search", params={"k": 3, "rerank": "false", "filter": "label=square"},
                              files=files_of(*served["sketches"]))
    raw = [base64.b64encode(p.read_bytes()).decode() for p in served["sketches"]]
    j = served["client"].post("/collections/pics/search",
                              json={"sketches": raw, "k": 3, "rerank": False, "filter": {"label": "square"}})
    assert ids(q.json()) == ids(j.json()) == want
    assert q.json()["rerank"] is False
    assert all(r["label"] == "square" for res in q.json()["queries"] for r in res["results"])


def test_without_rerank_given_the_collections_model_decides(served, monkeypatch):
    store, model = served["service"].store, served["service"].model("pics")
    monkeypatch.setitem(model.metadata, "card", {"rerank": {"on": True, "weight": 2.0}})
    want = search_sketches(store, "pics", model, served["sketches"], k=4, rerank=True)
    r = served["client"].post("/collections/pics/search", params={"k": 4}, files=files_of(*served["sketches"]))
    assert r.status_code == 200 and r.json()["rerank"] is True and ids(r.json()) == expected_ids(want)
    r = served["client"].post("/collections/pics/search", json={"sketches": [
        base64.b64encode(p.read_bytes()).decode() for p in served["sketches"]], "k": 4, "rerank": None})
    assert r.status_code == 200 and r.json()["rerank"] is True and ids(r.json()) == expected_ids(want)
    r = served["client"].post("/collections/pics/search", params={"k": 4, "rerank": "false"},
                              files=files_of(*served["sketches"]))
    assert r.json()["rerank"] is False
    text = served["client"].post("/collections/pics/search", json={"text": "a round thing", "k": 3})
    assert text.status_code == 200 and text.json()["rerank"] is False  # text has no tokens to re-rank with
    # `dmwan query` through a server leaves it to the server, and learns what was done.
    from dmwan_qdrant.server.client import search_through_server

    client = served["client"]
    monkeypatch.setattr(httpx, "request", lambda method, url, timeout=None, **kw: client.request(method, url, **kw))
    got = search_through_server("http://testserver", "pics", served["sketches"], k=4)
    assert got.rerank is True and expected_ids(got) == expected_ids(want)
    assert search_through_server("http://testserver", "pics", served["sketches"], k=4, rerank=False).rerank is False


def test_rerank_on_request_equals_the_librarys_fused_search(served):
    store, model = served["service"].store, served["service"].model("pics")
    want = search_sketches(store, "pics", model, served["sketches"], k=4, rerank=True)
    r = served["client"].post("/collections/pics/search", params={"k": 4, "rerank": "true"},
                              files=files_of(*served["sketches"]))
    assert r.status_code == 200 and r.json()["rerank"] is True
    assert ids(r.json()) == expected_ids(want)
    for q, exp in zip(r.json()["queries"], want):
        assert [g["score"] for g in q["results"]] == pytest.approx([w.score for w in exp], abs=1e-5)
        assert all(-1.0 <= g["score"] <= 1.0 + 1e-5 for g in q["results"])  # the cosine's scale


def test_each_collection_searches_its_own_points(served):
    r = served["client"].post("/collections/squares/search?k=10", files=files_of(served["sketches"][0]))
    results = r.json()["queries"][0]["results"]
    assert len(results) == 5 and all("/square/" in x["path"] for x in results)
    assert served["service"].model("squares") is served["service"].model("pics")  # one bundle, loaded once


def test_text_search(served):
    r = served["client"].post("/collections/pics/search", json={"text": "a round thing", "k": 3})
    assert r.status_code == 200 and r.json()["mode"] == "text"
    assert ids(r.json()) == expected_ids(served["expected_text"])


def test_collections_and_health(served):
    c = served["client"]
    listing = c.get("/collections").json()["collections"]
    assert [(x["name"], x["points"]) for x in listing] == [("pics", 10), ("squares", 5)]
    info = c.get("/collections/pics").json()
    assert info["points"] == 10 and info["vectors"] == {"global": 64, "tokens": 32}
    assert info["model"]["preset"] == "tiny" and info["index"]["state"] in ("exact", "indexed", "partial")
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json() == {"status": "ready", "collections": ["pics", "squares"]}
    error_of(c.get("/collections/nope"), 404)
    assert "/collections/{name}/search" in c.get("/openapi.json").json()["paths"]
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def _png(size: tuple[int, int], mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 255).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"files": [("sketch", ("notes.png", b"just text", "image/png"))]}, 415, "notes.png: not an image"),
        ({"files": [("sketch", ("bomb.png", _png((9000, 9000)), "image/png"))]}, 413, "exceeds the limit"),
        ({"files": [("sketch", ("empty.png", b"", "image/png"))]}, 415, "empty"),
        ({"json": {"sketches": ["%%%"]}}, 400, "not valid base64"),
        ({"json": {"sketches": "abc"}}, 400, "list"),
        ({"json": {}}, 400, "no sketch given"),
        ({"json": {"text": "   "}}, 400, "empty"),
        ({"json": {"text": "x", "sketches": [base64.b64encode(_png((8, 8))).decode()]}}, 400, "one kind of query at a time"),
        ({"json": {"text": "x", "colour": "red"}}, 400, "unknown field 'colour'"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "unsupported content type"),
        ({"json": {"text": "x", "filter": ["label"]}}, 400, "bad filter 'label'"),
        ({"json": {"text": "x", "filter": ["width=wide"]}}, 400, "width takes an integer"),
        ({"json": {"text": "x", "k": 0}}, 422, "k must be from 1 to 1000"),
        ({"json": {"text": "x", "k": "many"}}, 422, "k must be an integer"),
        ({"json": {"text": "x", "prefetch": 10**6}}, 422, "prefetch must be from 1"),
        ({"json": {"text": "x", "rerank": "maybe"}}, 422, "rerank must be true or false"),
        ({"json": {"text": "x"}, "params": {"k": 5000}}, 422, "k:"),
        ({"json": {"text": "x"}, "params": {"k": "abc"}}, 422, "k:"),
        ({"json": {"text": "x", "ef": 0}}, 422, "ef must be from 1 to 4096"),
        ({"json": {"text": "x", "ef": 10**6}}, 422, "ef must be from 1 to 4096"),
        ({"json": {"text": "x", "ef": "wide"}}, 422, "ef must be an integer"),
        ({"json": {"text": "x"}, "params": {"ef": 0}}, 422, "ef:"),
        ({"json": {"text": "x"}, "params": {"ef": -1}}, 422, "ef:"),
        ({"files": [("sketch", ("s.png", _png((8, 8)), "image/png")), ("ef", (None, "0"))]}, 422, "ef must be from 1"),
    ],
)
def test_bad_input_is_a_4xx_with_one_line(served, kwargs, status, words):
    r = served["client"].post("/collections/pics/search", **kwargs)
    assert words in error_of(r, status)


def test_unknown_collection_and_route(served):
    assert "not served here" in error_of(served["client"].post("/collections/nope/search", json={"text": "x"}), 404)
    error_of(served["client"].get("/nowhere"), 404)
    error_of(served["client"].put("/collections/pics/search"), 405)


def test_upload_over_the_limit_is_413(served):
    client = TestClient(create_app(served["service"], ServeSettings(max_upload_mb=0.05)))
    big = os.urandom(80_000)
    r = client.post("/collections/pics/search", files=[("sketch", ("big.png", big, "image/png"))])
    assert "over the limit of 0.05 MB" in error_of(r, 413)

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(10):
            yield b"x" * 10_000

    r = client.post("/collections/pics/search", content=chunks(), headers={"content-type": "application/json"})
    assert "over the limit" in error_of(r, 413)


def test_photos_and_thumbnails_by_point_id(served):
    c = served["client"]
    top = served["expected"][0][0]
    photo = c.get(f"/collections/pics/photos/{top.id}")
    assert photo.status_code == 200 and photo.content == open(top.path, "rb").read()
    assert photo.headers["content-type"] == "image/png"
    thumb = c.get(f"/collections/pics/photos/{top.id}/thumbnail", params={"size": 32})
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 32
    assert "size" in error_of(c.get(f"/collections/pics/photos/{top.id}/thumbnail?size=4096"), 422)
    assert "no point" in error_of(c.get("/collections/pics/photos/00000000-0000-0000-0000-000000000000"), 404)
    assert "no point" in error_of(c.get("/collections/pics/photos/not-an-id"), 404)
    # Never a path from the request: traversal does not reach a route.
    error_of(c.get("/collections/pics/photos/..%2F..%2F..%2Fetc%2Fpasswd"), 404)


def test_a_photo_swapped_or_gone_after_ingest_is_refused(served, tmp_path):
    c = served["client"]
    hit = served["expected"][1][-1]
    original = open(hit.path, "rb").read()
    stat = os.stat(hit.path)
    try:
        with open(hit.path, "wb") as f:  # another file under the ingested path
            f.write(_png((64, 64)))
        assert "changed on disk" in error_of(c.get(f"/collections/pics/photos/{hit.id}"), 404)
        os.remove(hit.path)
        assert "gone from disk" in error_of(c.get(f"/collections/pics/photos/{hit.id}/thumbnail"), 404)
    finally:
        with open(hit.path, "wb") as f:
            f.write(original)
        os.utime(hit.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert c.get(f"/collections/pics/photos/{hit.id}").status_code == 200


def test_api_key_guards_everything_but_health_and_page(served):
    client = TestClient(create_app(served["service"], ServeSettings(api_key="s3cret")))
    for path in ("/collections", "/collections/pics", "/metrics", "/openapi.json"):
        r = client.get(path)
        assert "API key" in error_of(r, 401) and r.headers["www-authenticate"] == "Bearer"
    error_of(client.get("/collections", headers={"Authorization": "Bearer wrong"}), 401)
    ok = client.get("/collections", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    for path in ("/healthz", "/readyz", "/", "/static/app.js"):
        assert client.get(path).status_code == 200, path


def test_cors_closed_unless_an_origin_is_given(served):
    origin = {"Origin": "https://shop.example.com"}
    closed = served["client"].get("/collections", headers=origin)
    assert "access-control-allow-origin" not in closed.headers
    client = TestClient(create_app(served["service"], ServeSettings(cors_origins=("https://shop.example.com",))))
    assert client.get("/collections", headers=origin).headers["access-control-allow-origin"] == origin["Origin"]
    other = client.get("/collections", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


def test_metrics_count_requests_and_time_the_work(served):
    c = served["client"]
    c.post("/collections/pics/search", files=files_of(served["sketches"][0]))
    c.post("/collections/pics/search", json={"text": ""})
    text = c.get("/metrics").text
    assert 'dmwan_http_requests_total{method="POST",route="/collections/{name}/search",status="200"}' in text
    assert 'route="/collections/{name}/search",status="400"' in text
    assert 'dmwan_embed_seconds_count{collection="pics"}' in text
    assert "dmwan_http_request_seconds_bucket" in text and "dmwan_batch_size_bucket" in text


def test_concurrent_requests_share_forward_passes(served):
    """Requests arriving together are embedded in one batch, and each gets its own answer."""
    service = served["service"]
    sizes: list[int] = []
    original = service.search_batch

    def counting(requests):
        sizes.append(len(requests))
        return original(requests)

    service.search_batch = counting
    try:
        app = create_app(service, ServeSettings(max_batch=8, batch_wait_s=0.05))
        files = [served["sketches"][i % 2].read_bytes() for i in range(8)]

        async def run():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await asyncio.gather(*[
                    client.post("/collections/pics/search?k=4", files=[("sketch", ("s.png", f, "image/png"))])
                    for f in files])

        answers = asyncio.run(run())
    finally:
        del service.search_batch
    assert max(sizes) > 1 and sum(sizes) == 8
    want = expected_ids(served["expected"])
    assert [ids(a.json())[0] for a in answers] == [want[i % 2] for i in range(8)]


def test_store_that_goes_away_gives_503(tmp_path):
    from qdrant_stub import QdrantStub

    from dmwan_qdrant.ingest import ingest
    from dmwan_qdrant.model import create_model
    from dmwan_qdrant.store.server import ServerStore

    env = make_collection(tmp_path)
    with QdrantStub() as stub:
        store = ServerStore(stub.url, retries=0, timeout=2)
        model = create_model("tiny", seed=0)
        model.bundle_path = env["bundle"]
        ingest([env["root"] / "photos"], store, "pics", model, label_from_folder=True)
        client = TestClient(create_app(SearchService(store, ["pics"])))
        assert client.get("/readyz").status_code == 200
        stub.faults.extend([("status", 503)] * 50)
        assert "not ready" in error_of(client.get("/readyz"), 503)
        r = client.post("/collections/pics/search", files=files_of(env["sketches"][0]))
        error_of(r, 503)
        stub.faults.clear()
        assert client.get("/readyz").status_code == 200
        store.close()


def test_under_a_path_prefix_the_open_routes_stay_open(served):
    """Mounted under a prefix (a Ray Serve route_prefix, a reverse proxy), the health checks and
    the page need no key, the API still does, and the page's relative URLs resolve."""
    client = TestClient(create_app(served["service"], ServeSettings(api_key="s3cret")), root_path="/search-app")
    assert client.get("/search-app/readyz").status_code == 200
    assert client.get("/search-app/static/app.js").status_code == 200
    error_of(client.get("/search-app/collections"), 401)
    bare = client.get("/search-app", follow_redirects=False)
    assert bare.status_code == 307 and bare.headers["location"].endswith("/search-app/")
    assert "text/html" in client.get("/search-app/").headers["content-type"]


def test_more_like_a_photo_or_a_stored_point_equals_the_library(served):
    from dmwan_qdrant.search.similar import search_like, search_photos

    service, client = served["service"], served["client"]
    photo = served["root"] / "photos" / "circle" / "circle0.png"
    model = service.model("pics")
    expected = search_photos(service.store, "pics", model, [Image.open(photo).convert("RGB")], k=3)
    r = client.post("/collections/pics/search", params={"k": 3},
                    files=[("photo", (photo.name, photo.read_bytes(), "image/png"))])
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "photo" and ids(r.json()) == expected_ids(expected)
    encoded = base64.b64encode(photo.read_bytes()).decode()
    assert ids(client.post("/collections/pics/search", json={"photos": [encoded], "k": 3}).json()) == ids(r.json())

    point = expected[0][0].id
    like = client.post("/collections/pics/search", json={"like": point, "k": 3}).json()
    assert like["mode"] == "like" and ids(like) == expected_ids(search_like(service.store, "pics", model, [point], k=3))
    assert point not in ids(like)[0]
    error_of(client.post("/collections/pics/search", json={"like": ["not-a-uuid"]}), 400)
    missing = error_of(client.post("/collections/pics/search", json={"like": "00000000-0000-0000-0000-000000000000"}), 400)
    assert "has no point" in missing
    both = error_of(client.post("/collections/pics/search", json={"like": point, "text": "x"}), 400)
    assert "one kind of query" in both


def test_ef_as_a_query_parameter_form_or_json_field_reaches_the_store(served, monkeypatch):
    from dmwan_qdrant.server.client import search_through_server

    service, client = served["service"], served["client"]
    asked: list = []
    search_batch = service.store.search_batch
    monkeypatch.setattr(service.store, "search_batch",
                        lambda *a, **kw: asked.append(kw.get("hnsw_ef")) or search_batch(*a, **kw))

    def search(hnsw_ef, **kwargs):
        asked.clear()
        r = client.post("/collections/pics/search", **kwargs)
        assert r.status_code == 200, r.text
        assert asked and set(asked) == {hnsw_ef}, kwargs
        return r.json()

    # 10 points are searched exactly, so any ef gives the default's answer.
    answer = search(1, params={"k": 4, "ef": 1}, files=files_of(*served["sketches"]))
    assert ids(answer) == expected_ids(served["expected"])
    assert ids(search(4096, json={"text": "a round thing", "k": 3, "ef": 4096})) == expected_ids(served["expected_text"])
    photo = served["root"] / "photos" / "circle" / "circle0.png"
    search(64, files=[("photo", (photo.name, photo.read_bytes(), "image/png")), ("ef", (None, "64"))])
    search(32, json={"like": answer["queries"][0]["results"][0]["id"], "ef": 32})
    search(None, json={"text": "a round thing", "ef": None})  # null: the collection's default
    # Sketch requests in one batch share a store call only with the same ef.
    sketch = Image.open(served["sketches"][0]).convert("RGB")
    asked.clear()
    reqs = [SearchRequest("pics", [sketch], k=2, rerank=False, ef=ef) for ef in (8, 8, 32, None)]
    answers = service.search_batch(reqs)
    assert sorted(asked, key=str) == [32, 8, None] and all(a.error is None and len(a.results[0]) == 2 for a in answers)
    # `dmwan query` through a server sends it too.
    monkeypatch.setattr(httpx, "request", lambda method, url, timeout=None, **kw: client.request(method, url, **kw))
    asked.clear()
    got = search_through_server("http://testserver", "pics", text="a round thing", k=3, ef=16)
    assert set(asked) == {16} and expected_ids(got) == expected_ids(served["expected_text"])
    params = client.get("/openapi.json").json()["paths"]["/collections/{name}/search"]["post"]["parameters"]
    ef = {p["name"]: p for p in params}["ef"]
    assert not ef["required"] and "collection's" in ef["description"]
