"""Payload filters: the structure (`dmwan_qdrant.store.filters`), the ``--filter`` syntax
(`parse_filters`), each condition kind on every backend, the unknown-key error, and the server's
JSON object form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import make_collection
from test_store_contract import make_store, pid

from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.search import check_filter_keys, parse_filters, search_text
from dmwan_qdrant.search.request import SearchRequest
from dmwan_qdrant.server.app import create_app
from dmwan_qdrant.server.requests import _filters
from dmwan_qdrant.server.service import SearchService, _filter_key
from dmwan_qdrant.store import CollectionSpec, PhotoPoint, Store, open_store
from dmwan_qdrant.store.filters import Match, MatchAny, Prefix, Range, check_filter

SPEC = CollectionSpec(dim=4, token_dim=3, model={"fingerprint": "f1"})
SYNTAX = "expected key=value, key=a,b, key>=N, key<=N, key>N, key<N or key^=prefix"
# (path, width, label or None, flag) of points 0..5; "flag" is a boolean no filter can match
ROWS = [
    ("/photos/shoes/0.jpg", 320, "shoe", True),
    ("/photos/shoes/1.jpg", 640, "shoe", False),
    ("/photos/shoes/2.jpg", 1024, "boot", False),
    ("/photos/boots/3.jpg", 1920, "boot", True),
    ("/photos/boots/4.jpg", 2560, None, False),
    ("/other/5.jpg", 640, "sandal", False),
]
Q = np.array([1.0, 0.0, 0.0, 0.0])


def one_line_usage(fn, *args) -> str:
    with pytest.raises(UsageError) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


# -- the structure ---------------------------------------------------------------------------


def test_check_filter_builds_conditions():
    assert check_filter(None) == [] and check_filter({}) == []
    assert check_filter(
        {
            "label": "shoe",
            "width": [640, 1920],
            "tags": ("a", "b"),
            "height": {"gte": 480, "lt": 1080.5},
            "path": {"prefix": "/photos/"},
        }
    ) == [
        Match("label", "shoe"),
        MatchAny("width", (640, 1920)),
        MatchAny("tags", ("a", "b")),
        Range("height", gte=480, lt=1080.5),
        Prefix("path", "/photos/"),
    ]


@pytest.mark.parametrize(
    ("flt", "words"),
    [
        ({"i": 1.5}, "must be a string, integer, list or object"),
        ({"flag": True}, "is a boolean (True)"),
        ({"i": None}, "must be a string"),
        ({"": "x"}, "non-empty strings"),
        ({"a": []}, "empty list"),
        ({"a": [1, "x"]}, "only strings or only integers"),
        ({"a": [True, False]}, "only strings or only integers"),
        ({"a": [1.5]}, "only strings or only integers"),
        ({"a": {}}, "unknown or mixed operators"),
        ({"a": {"gte": 1, "prefix": "x"}}, "unknown or mixed operators"),
        ({"a": {"from": 1}}, "unknown or mixed operators"),
        ({"a": {"gte": "1"}}, "needs a number for 'gte'"),
        ({"a": {"lt": True}}, "needs a number"),
        ({"a": {"lt": math.nan}}, "needs a number"),
        ({"a": {"prefix": ""}}, "non-empty string prefix"),
        ({"a": {"prefix": 3}}, "non-empty string prefix"),
    ],
)
def test_check_filter_refuses_bad_shapes(flt, words):
    assert words in one_line_usage(check_filter, flt)


# -- the --filter syntax ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "want"),
    [
        (["label=cat", "width=640", "path=/a=b"], {"label": "cat", "width": 640, "path": "/a=b"}),
        (["label=2024"], {"label": "2024"}),
        (["label=shoe,boot"], {"label": ["shoe", "boot"]}),
        (["width=640,1920"], {"width": [640, 1920]}),
        (["i=1,2"], {"i": ["1", "2"]}),  # not an integer field: strings
        (["width>=640"], {"width": {"gte": 640}}),
        (["width>=640", "width<=1920"], {"width": {"gte": 640, "lte": 1920}}),
        (["score>3", "score<10"], {"score": {"gt": 3, "lt": 10}}),  # ranges are numeric on any key
        (["width>-5"], {"width": {"gt": -5}}),
        (["path^=/photos/shoes/"], {"path": {"prefix": "/photos/shoes/"}}),
        (["path^=/a>=b"], {"path": {"prefix": "/a>=b"}}),
        (["path=/a>b"], {"path": "/a>b"}),
        ([" label =x"], {"label": "x"}),
        ([], {}),
    ],
)
def test_parse_filters(specs, want):
    assert parse_filters(specs) == want
    check_filter(parse_filters(specs))


@pytest.mark.parametrize(
    ("specs", "words"),
    [
        (["label"], "bad filter 'label'"),
        (["=x"], "bad filter '=x'"),
        (["1abc=x"], "bad filter"),
        (["path^x"], "bad filter"),
        (["width=wide"], "width takes an integer"),
        (["width=640,wide"], "width takes an integer"),
        (["width>=big"], "width>= takes an integer"),
        (["score<1.5"], "score< takes an integer"),
        (["label=a,,b"], "empty value"),
        (["label=a,"], "empty value"),
        (["path^="], "prefix is empty"),
        (["label=a", "label=b"], "label is given twice"),
        (["width>=1", "width>=2"], "width is given twice"),
        (["width=640", "width>=2"], "width is given twice"),
        (["path^=/a", "path^=/b"], "path is given twice"),
    ],
)
def test_parse_filters_refuses_with_one_line_naming_the_syntax(specs, words):
    msg = one_line_usage(parse_filters, specs)
    assert words in msg and SYNTAX in msg


# -- every condition kind on every backend ---------------------------------------------------


def photos() -> list[PhotoPoint]:
    pts = []
    for i, (path, width, label, flag) in enumerate(ROWS):
        payload = {"path": path, "width": width, "flag": flag}
        if label is not None:
            payload["label"] = label
        t = math.radians(10 * i)
        vec = np.array([math.cos(t), math.sin(t), 0.0, 0.0])
        pts.append(PhotoPoint(pid(i), vec, np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]]), payload))
    return pts


@pytest.fixture(scope="module", params=["edge", "memory", "stub"])
def filled(request, tmp_path_factory):
    """Points 0..5 of `ROWS` in collection ``f``, one store per backend for the whole module."""
    store, stub = make_store(request.param, tmp_path_factory.mktemp(request.param))
    store.create_collection("f", SPEC)
    store.upsert("f", photos())
    yield store
    store.close()
    if stub is not None:
        stub.stop()


CASES = [
    ({"label": "shoe"}, {0, 1}),
    ({"width": 640}, {1, 5}),
    ({"label": ["shoe", "boot"]}, {0, 1, 2, 3}),
    ({"width": [640, 1920, 7]}, {1, 3, 5}),
    ({"width": {"gte": 640, "lte": 1920}}, {1, 2, 3, 5}),
    ({"width": {"gt": 640, "lt": 1920}}, {2}),
    ({"width": {"gt": 1000.5}}, {2, 3, 4}),
    ({"width": {"lt": 0}}, set()),
    ({"path": {"prefix": "/photos/shoes/"}}, {0, 1, 2}),
    ({"path": {"prefix": "/photos/"}}, {0, 1, 2, 3, 4}),
    ({"path": {"prefix": "/nowhere/"}}, set()),
    ({"path": {"prefix": "/photos/"}, "width": {"gte": 1000}, "label": ["boot", "x"]}, {2, 3}),
    (parse_filters(["path^=/photos/", "width>=640", "width<2000", "label=shoe,sandal"]), {1}),
]


@pytest.mark.parametrize(("flt", "want"), CASES)
def test_each_condition_kind(filled, flt, want):
    hits = filled.search("f", Q, 10, filter=flt)
    assert {h.id for h in hits} == {pid(i) for i in want}
    # the same filter in both stages of a re-ranked search, and in a batch
    reranked = filled.search("f", Q, 3, filter=flt, rerank_tokens=np.array([[0.0, 0.0, 1.0]]), prefetch=3)
    assert {h.id for h in reranked} <= {pid(i) for i in want} and len(reranked) == min(3, len(want))
    batch = filled.search_batch("f", np.stack([Q, Q]), 10, filter=flt)
    assert [{h.id for h in b} for b in batch] == [{pid(i) for i in want}] * 2


def test_bad_filter_is_refused_by_every_backend(filled):
    for flt in ({"label": []}, {"width": {"gte": "x"}}, {"i": 1.5}, {"flag": False}):
        one_line_usage(filled.search, "f", Q, 10, flt)


def test_count_with_key(filled):
    for key, n in (("label", 5), ("width", 6), ("flag", 6), ("lable", 0)):
        assert filled.count_with_key("f", key) == n
        assert Store.count_with_key(filled, "f", key) == n  # the scanning default agrees


# -- unknown keys ----------------------------------------------------------------------------


def test_unknown_key_is_an_error_but_an_unmatched_value_is_not(filled):
    msg = one_line_usage(check_filter_keys, filled, "f", {"label": "shoe", "lable": "shoe"})
    assert msg == "collection 'f' has no point with payload key 'lable' (keys: flag, label, path, width)"
    check_filter_keys(filled, "f", {"label": "nope", "width": {"gt": 10**9}})
    check_filter_keys(filled, "f", None)
    filled.create_collection("empty", SPEC)
    check_filter_keys(filled, "empty", {"lable": "x"})  # nothing to list: no point, no error
    filled.upsert("empty", [PhotoPoint(pid(9), Q, np.ones((1, 3)), {"path": "/x.jpg"})])
    msg = one_line_usage(check_filter_keys, filled, "empty", {"label": "x"})
    assert "(keys: path); ingest with --label-from-folder" in msg


# -- searches and the server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    env = make_collection(tmp_path_factory.mktemp("filters"), photos_per_shape=3)
    store = open_store(path=env["store"])
    service = SearchService(store, ["pics"])
    env.update(store=store, service=service, client=TestClient(create_app(service)))
    yield env
    store.close()


def labels(answer: dict) -> list[set[str]]:
    return [{r["label"] for r in q["results"]} for q in answer["queries"]]


def test_searches_raise_for_an_unknown_key(served):
    model = served["service"].model("pics")
    with pytest.raises(UsageError, match="no point with payload key 'lable'"):
        search_text(served["store"], "pics", model, "a round thing", k=3, filter={"lable": "circle"})
    assert search_text(served["store"], "pics", model, "a round thing", k=3, filter={"label": "hexagon"}) == [[]]


def test_server_takes_the_structured_json_object(served):
    post = lambda **kw: served["client"].post("/collections/pics/search", **kw)
    square = str(served["root"] / "photos" / "square") + "/"
    r = post(json={"text": "a round thing", "k": 10, "filter": {"label": ["circle"], "width": {"gte": 40, "lte": 60}}})
    assert r.status_code == 200, r.text
    assert labels(r.json()) == [{"circle"}] and len(r.json()["queries"][0]["results"]) == 3
    r = post(json={"text": "a round thing", "k": 10, "filter": {"path": {"prefix": square}}})
    assert labels(r.json()) == [{"square"}]
    r = post(json={"text": "x", "k": 10, "filter": {"width": "48", "label": "circle"}})  # integer fields as strings
    assert labels(r.json()) == [{"circle"}]
    r = post(json={"text": "x", "k": 10, "filter": {"width": {"gt": 48}}})
    assert r.status_code == 200 and r.json()["queries"][0]["results"] == []
    r = post(params={"filter": ["width>=40", "width<=60", "label=circle,square"], "k": 10}, json={"text": "x"})
    assert labels(r.json()) == [{"circle", "square"}]
    for flt, words in (
        ({"lable": "circle"}, "no point with payload key 'lable'"),
        ({"width": {"gte": "wide"}}, "needs a number"),
        ({"width": "wide"}, "width takes an integer"),
        ({"label": []}, "empty list"),
        (["label=a", 3], "filter must be"),
        (["width>=x"], "width>= takes an integer"),
    ):
        r = post(json={"text": "x", "filter": flt})
        assert r.status_code == 400, r.text
        assert list(r.json()) == ["error"] and "\n" not in r.json()["error"] and words in r.json()["error"]


def test_requests_with_structured_filters_group_and_answer(served):
    assert _filter_key({"a": [1, 2], "b": {"lt": 3, "gte": 1}}) == _filter_key({"b": {"gte": 1, "lt": 3}, "a": [1, 2]})
    assert _filter_key(None) == _filter_key({})
    sketch = Image.open(served["sketches"][0]).convert("RGB")
    flt = {"label": ["circle", "square"], "width": {"gte": 1}}
    reqs = [SearchRequest("pics", [sketch], k=2, filter=dict(flt)) for _ in range(2)]
    reqs.append(SearchRequest("pics", [sketch], k=2, filter={"path": {"prefix": "/nowhere/"}}))
    first, second, third = served["service"].search_batch(reqs)
    assert first.error is None and first.results == second.results and len(first.results[0]) == 2
    assert third.error is None and third.results == [[]]


def test_filters_of_every_form():
    assert _filters(None) is None and _filters({}) is None and _filters([]) is None
    assert _filters("label=a,b") == {"label": ["a", "b"]}
    assert _filters({"label": ["a"], "width": ["640", 1], "p": {"prefix": "/x"}}) == {
        "label": ["a"], "width": [640, 1], "p": {"prefix": "/x"}
    }
