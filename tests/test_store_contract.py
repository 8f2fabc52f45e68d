"""The store contract: the same assertions against every backend.

Backends: ``edge`` (qdrant-edge in tmp_path), ``memory`` (qdrant-client ``:memory:``), ``stub``
(`ServerStore` over HTTP against tests/qdrant_stub.py) and ``server`` (a real Qdrant at
``$QDRANT_URL``, marker ``server``, skipped without it). The last test loads the same random data
into every backend and compares the rankings, as qdrant-client's congruence tests do.
"""

from __future__ import annotations

import json
import math
import os
import uuid
import warnings

import numpy as np
import pytest
from qdrant_stub import QdrantStub

from dmwan_qdrant.encoder import check_same_record
from dmwan_qdrant.errors import CollectionNotFoundError, ModelMismatchError, StoreError, UsageError
from dmwan_qdrant.store import CollectionSpec, EdgeStore, MemoryStore, PhotoPoint, ServerStore
from dmwan_qdrant.store import client as client_mod
from dmwan_qdrant.store import edge as edge_mod
from dmwan_qdrant.store.index import LEGACY, IndexSettings
from dmwan_qdrant.store.manifest import MANIFEST, SHARD_DIR, SHARD_MANIFEST

MODEL = {"fingerprint": "abc123", "preset": "tiny", "dim": 4}
SPEC = CollectionSpec(dim=4, token_dim=3, model=MODEL)
BACKENDS = ["edge", "memory", "stub", pytest.param("server", marks=pytest.mark.server)]
TOKEN_TOL = 1e-3
"""Re-rank scores are exact to this much: new collections keep float16 tokens (int8 once
optimized, see test_store_edge), the memory backend float32."""


def pid(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"photo-{i}"))


def make_store(kind: str, tmp_path):
    if kind == "edge":
        return EdgeStore(tmp_path / "store"), None
    if kind == "memory":
        return MemoryStore(), None
    if kind == "stub":
        stub = QdrantStub().start()
        return ServerStore(stub.url, retries=0, timeout=10), stub
    url = os.environ.get("QDRANT_URL")
    if not url:
        pytest.skip("QDRANT_URL not set")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # api key over plain http
        return ServerStore(url, api_key=os.environ.get("QDRANT_API_KEY")), None


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s, stub = make_store(request.param, tmp_path)
    yield s
    if request.param == "server":  # never leave test collections on a real server
        for n in s.list_collections():
            if n.startswith("t_"):
                s.delete_collection(n)
    s.close()
    if stub is not None:
        stub.stop()


@pytest.fixture
def name():
    # Unique per test, so that a real server shared with others sees no clash.
    return "t_" + uuid.uuid4().hex[:10]


def fan(n: int = 5) -> list[PhotoPoint]:
    """Points at angles 0, 20, 40... degrees from e1 in the global space (known cosine order),
    whose tokens agree with the query token [0, 0, 1] in the reverse order, and alternate labels."""
    pts = []
    for i in range(n):
        t = math.radians(20 * i)
        c = (i + 1) / (n + 1)  # cosine of the second token with [0,0,1]: grows with i
        tokens = np.array([[1.0, 0.0, 0.0], [math.sqrt(1 - c * c), 0.0, c]])
        payload = {"label": "a" if i % 2 == 0 else "b", "path": f"/p/{i}.jpg", "i": i}
        pts.append(
            PhotoPoint(pid(i), np.array([math.cos(t), math.sin(t), 0.0, 0.0]), tokens, payload)
        )
    return pts


Q = np.array([1.0, 0.0, 0.0, 0.0])
QTOK = np.array([[0.0, 0.0, 1.0]])


@pytest.fixture
def filled(store, name):
    store.create_collection(name, SPEC)
    store.upsert(name, fan())
    return store


def test_create_list_info_delete(store, name):
    other = name + "_b"
    assert not store.collection_exists(name)
    store.create_collection(name, SPEC)
    store.create_collection(other, CollectionSpec(dim=8, token_dim=2, model={"fingerprint": "z"}))
    assert store.collection_exists(name)
    assert {name, other} <= set(store.list_collections())
    assert store.list_collections() == sorted(store.list_collections())
    info = store.collection_info(name)
    assert (info.name, info.points, info.dim, info.token_dim) == (name, 0, 4, 3)
    assert info.model == MODEL and info.backend == store.backend
    assert info.index_state in ("exact", "none")
    with pytest.raises(StoreError, match="already exists"):
        store.create_collection(name, SPEC)
    store.delete_collection(other)
    assert not store.collection_exists(other)
    assert other not in store.list_collections()
    with pytest.raises(UsageError):
        store.create_collection("../evil", SPEC)


def test_model_record_round_trip_and_check(store, name):
    model = {
        "fingerprint": "f" * 64,
        "preset": "vit_b16",
        "dim": 4,
        "nested": {"a": [1, 2.5, None]},
    }
    store.create_collection(name, CollectionSpec(4, 3, model))
    assert store.get_model_record(name) == model
    check_same_record(name, store.get_model_record(name), {"fingerprint": "f" * 64, "preset": "renamed"})
    with pytest.raises(ModelMismatchError, match="was filled by model vit_b16"):
        check_same_record(name, store.get_model_record(name), {"fingerprint": "0" * 64})
    # The record is not a point: invisible to counts, scrolls and searches.
    assert store.count(name) == 0
    assert list(store.scroll_payloads(name)) == []
    assert store.search(name, Q, 10) == []


def test_upsert_is_idempotent_and_replaces(filled, name):
    assert filled.count(name) == 5
    filled.upsert(name, fan())
    assert filled.count(name) == 5
    changed = fan()[:1]
    changed[0].payload = {"label": "z", "path": "/p/new.jpg"}
    filled.upsert(name, changed)
    assert filled.count(name) == 5
    assert filled.retrieve(name, [pid(0)]) == [{"label": "z", "path": "/p/new.jpg"}]
    assert filled.collection_info(name).points == 5
    # Ids are compared in canonical form: upper case is the same point.
    filled.upsert(name, [PhotoPoint(pid(1).upper(), np.ones(4), np.ones((2, 3)), {"x": 1})])
    assert filled.count(name) == 5


def test_retrieve_keeps_order_and_skips_missing(filled, name):
    got = filled.retrieve(name, [pid(3), str(uuid.uuid4()), pid(0)])
    assert [p["i"] for p in got] == [3, 0]
    assert filled.retrieve(name, []) == []


def test_scroll_pages_and_fields(filled, name, monkeypatch):
    monkeypatch.setattr(edge_mod, "_PAGE", 2)  # several pages out of 5 points
    monkeypatch.setattr(client_mod, "_PAGE", 2)
    rows = dict(filled.scroll_payloads(name))
    assert set(rows) == {pid(i) for i in range(5)}
    assert rows[pid(2)] == {"label": "a", "path": "/p/2.jpg", "i": 2}
    only = dict(filled.scroll_payloads(name, ["path"]))
    assert only[pid(4)] == {"path": "/p/4.jpg"}


def test_delete_points(filled, name):
    filled.delete_points(name, [pid(0), pid(1), str(uuid.uuid4())])
    assert filled.count(name) == 3
    assert filled.retrieve(name, [pid(0), pid(2)]) == [{"label": "a", "path": "/p/2.jpg", "i": 2}]
    assert [h.id for h in filled.search(name, Q, 10)] == [pid(2), pid(3), pid(4)]


def test_search_exact_order_and_scores(filled, name):
    hits = filled.search(name, Q, 3)
    assert [h.id for h in hits] == [pid(0), pid(1), pid(2)]
    for i, h in enumerate(hits):
        assert h.score == pytest.approx(math.cos(math.radians(20 * i)), abs=1e-5)
    assert hits[1].payload == {"label": "b", "path": "/p/1.jpg", "i": 1}
    assert len(filled.search(name, Q, 50)) == 5


def test_filter(filled, name):
    hits = filled.search(name, Q, 10, filter={"label": "b"})
    assert [h.id for h in hits] == [pid(1), pid(3)]
    assert filled.search(name, Q, 10, filter={"label": "nope"}) == []
    assert [
        h.id for h in filled.search(name, Q, 10, filter={"label": "a", "path": "/p/2.jpg"})
    ] == [pid(2)]
    with pytest.raises(UsageError):
        filled.search(name, Q, 10, filter={"i": 1.5})


def test_maxsim_rerank_reorders_inside_prefetch(filled, name):
    # Global order is 0,1,2,3,4; token agreement with QTOK grows with i, so the re-rank reverses
    # the candidates, and only the prefetched ones (top 3 by global) take part.
    hits = filled.search(name, Q, 3, rerank_tokens=QTOK, prefetch=3)
    assert [h.id for h in hits] == [pid(2), pid(1), pid(0)]
    assert hits[0].score == pytest.approx(3 / 6, abs=TOKEN_TOL)
    hits = filled.search(name, Q, 5, rerank_tokens=QTOK, prefetch=100)
    assert [h.id for h in hits] == [pid(4), pid(3), pid(2), pid(1), pid(0)]
    # MaxSim sums, over query tokens, the best cosine among the point's tokens.
    two = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert filled.search(name, Q, 1, rerank_tokens=two)[0].score == pytest.approx(
        1 + 5 / 6, abs=TOKEN_TOL
    )
    # k above prefetch still fills k; the filter applies in both stages.
    assert len(filled.search(name, Q, 5, rerank_tokens=QTOK, prefetch=2)) == 5
    hits = filled.search(name, Q, 2, filter={"label": "a"}, rerank_tokens=QTOK, prefetch=2)
    assert [h.id for h in hits] == [pid(2), pid(0)]  # a-points 0, 2 prefetched, 4 is not


def test_search_batch_equals_looped_search(filled, name):
    qs = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0.5, 0.5, 0.1, 0]])
    toks = [QTOK, np.array([[0.2, 0, 1.0]]), np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])]
    for flt in (None, {"label": "a"}):
        batch = filled.search_batch(name, qs, 3, filter=flt)
        assert batch == [filled.search(name, q, 3, filter=flt) for q in qs]
        batch = filled.search_batch(name, qs, 3, filter=flt, rerank_tokens=toks, prefetch=4)
        assert batch == [
            filled.search(name, q, 3, filter=flt, rerank_tokens=t, prefetch=4)
            for q, t in zip(qs, toks, strict=True)
        ]


def test_bad_inputs(filled, name):
    with pytest.raises(ModelMismatchError):
        filled.upsert(name, [PhotoPoint(pid(9), np.ones(5), np.ones((2, 3)))])
    with pytest.raises(ModelMismatchError):
        filled.upsert(name, [PhotoPoint(pid(9), np.ones(4), np.ones((2, 4)))])
    with pytest.raises(StoreError, match="UUID"):
        filled.upsert(name, [PhotoPoint("photo-9", np.ones(4), np.ones((2, 3)))])
    with pytest.raises(StoreError, match="NaN"):
        filled.upsert(name, [PhotoPoint(pid(9), np.array([1, np.nan, 0, 0]), np.ones((2, 3)))])
    with pytest.raises(StoreError, match="not plain JSON"):
        filled.upsert(name, [PhotoPoint(pid(9), np.ones(4), np.ones((2, 3)), {"w": np.int64(3)})])
    with pytest.raises(ModelMismatchError):
        filled.search(name, np.ones(3), 3)
    with pytest.raises(ModelMismatchError):
        filled.search(name, Q, 3, rerank_tokens=np.ones((2, 2)))
    with pytest.raises(UsageError):
        filled.search(name, Q, 0)
    assert filled.count(name) == 5


def test_missing_collection(filled, name):
    calls = [
        lambda s: s.collection_info("missing"),
        lambda s: s.get_model_record("missing"),
        lambda s: s.upsert("missing", fan(1)),
        lambda s: s.retrieve("missing", [pid(0)]),
        lambda s: list(s.scroll_payloads("missing")),
        lambda s: s.delete_points("missing", [pid(0)]),
        lambda s: s.count("missing"),
        lambda s: s.search("missing", Q, 3),
        lambda s: s.search_batch("missing", [Q, Q], 3, rerank_tokens=[QTOK, QTOK]),
        lambda s: s.optimize("missing"),
        lambda s: s.delete_collection("missing"),
    ]
    for call in calls:
        with pytest.raises(
            CollectionNotFoundError, match=rf"no collection named 'missing' \(collections: .*{name}"
        ):
            call(filled)


def test_optimize_keeps_results(filled, name):
    before = filled.search(name, Q, 5, rerank_tokens=QTOK)
    filled.optimize(name)
    filled.flush()
    assert filled.search(name, Q, 5, rerank_tokens=QTOK) == before
    assert filled.count(name) == 5


def test_closed_store_refuses(store, name):
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count(name)


def test_backends_agree_on_random_data(tmp_path):
    """Same data in every backend: same ids in the same order, same scores."""
    rng = np.random.default_rng(7)
    spec = CollectionSpec(dim=16, token_dim=8, model={"fingerprint": "r"})
    pts = [
        PhotoPoint(
            pid(i), rng.standard_normal(16), rng.standard_normal((4, 8)), {"label": f"c{i % 3}"}
        )
        for i in range(300)
    ]
    queries = rng.standard_normal((6, 16))
    qtoks = [rng.standard_normal((3, 8)) for _ in queries]
    results = {}
    for kind in ("edge", "memory", "stub"):
        s, stub = make_store(kind, tmp_path)
        try:
            s.create_collection("cmp", spec)
            s.upsert("cmp", pts)
            results[kind] = [
                s.search_batch("cmp", queries, 10),
                s.search_batch("cmp", queries, 10, rerank_tokens=qtoks, prefetch=30),
                s.search_batch(
                    "cmp", queries, 10, filter={"label": "c1"}, rerank_tokens=qtoks, prefetch=30
                ),
            ]
        finally:
            s.close()
            if stub is not None:
                stub.stop()
    ref = results.pop("memory")
    for kind, res in results.items():
        for got_runs, ref_runs, tol in zip(res, ref, (1e-4, TOKEN_TOL, TOKEN_TOL), strict=True):
            for got, want in zip(got_runs, ref_runs, strict=True):
                assert [h.id for h in got] == [h.id for h in want], kind
                assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=tol), kind


def test_index_settings_round_trip(store, name):
    store.create_collection(name, SPEC)
    assert store.collection_info(name).index == IndexSettings()
    assert IndexSettings().tokens == "int8"  # the compact layout is the default
    custom = IndexSettings(hnsw_m=8, ef_construct=64, hnsw_ef=40, tokens="float16")
    other = name + "_c"
    store.create_collection(other, CollectionSpec(4, 3, MODEL, custom))
    store.upsert(other, fan())
    assert store.collection_info(other).index == custom
    assert [h.id for h in store.search(other, Q, 3)] == [pid(0), pid(1), pid(2)]
    assert [h.id for h in store.search(other, Q, 2, rerank_tokens=QTOK)] == [pid(4), pid(3)]
    with pytest.raises(UsageError, match="token storage"):
        IndexSettings(tokens="int4")
    with pytest.raises(UsageError, match="hnsw_m must be a positive integer"):
        IndexSettings(hnsw_m=0)


def test_hnsw_ef_is_accepted_and_checked(filled, name):
    want = filled.search(name, Q, 3)
    for ef in (1, 16, np.int64(512)):
        assert filled.search(name, Q, 3, hnsw_ef=ef) == want
    toks = [QTOK, QTOK]
    assert filled.search_batch(name, [Q, Q], 3, rerank_tokens=toks, hnsw_ef=8) == filled.search_batch(
        name, [Q, Q], 3, rerank_tokens=toks
    )
    for bad in (0, -3, 2.5, "64", True):
        with pytest.raises(UsageError, match="ef must be a positive integer"):
            filled.search(name, Q, 3, hnsw_ef=bad)


def create_unrecorded(store, name) -> None:
    """A collection as made before index settings were recorded: float32 tokens, m=16,
    ef_construct=100, and a manifest (or metadata) without ``index``."""
    if store.backend == "edge":
        store.create_collection(name, CollectionSpec(4, 3, MODEL, LEGACY))
        folder = store.path / name
        for file in (folder / MANIFEST, folder / SHARD_DIR / SHARD_MANIFEST):
            manifest = json.loads(file.read_text())
            del manifest["index"]
            file.write_text(json.dumps(manifest))
        store._manifests.pop(name)  # as a process that opens the store afresh reads it
        return
    meta = {"format": 1, "dim": 4, "token_dim": 3, "model": MODEL}
    store._client.create_collection(
        name,
        vectors_config=client_mod.vectors_config(4, 3, "float32"),
        metadata={client_mod.META_KEY: meta},
    )


def test_collections_without_recorded_settings_keep_working(store, name):
    create_unrecorded(store, name)
    store.upsert(name, fan())
    assert store.collection_info(name).index == LEGACY
    assert LEGACY.tokens == "float32" and (LEGACY.hnsw_m, LEGACY.ef_construct) == (16, 100)
    assert [h.id for h in store.search(name, Q, 3, hnsw_ef=32)] == [pid(0), pid(1), pid(2)]
    hits = store.search(name, Q, 5, rerank_tokens=QTOK)
    assert [h.id for h in hits] == [pid(4), pid(3), pid(2), pid(1), pid(0)]
    assert hits[0].score == pytest.approx(5 / 6, abs=1e-5)  # float32 tokens: exact
