"""Search with sketches and text against an ingested collection; the collection's model; sheets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dmwan_qdrant.encoder import load_bundle, load_collection_model
from dmwan_qdrant.errors import CheckpointError, CollectionNotFoundError, ImageError, ModelMismatchError, UsageError
from dmwan_qdrant.imageio import load_image
from dmwan_qdrant.ingest import ingest
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.search import parse_filters, search_sketches, search_text
from dmwan_qdrant.search.similar import search_like, search_photos
from dmwan_qdrant.sheet import contact_sheet
from dmwan_qdrant.store import open_store

SHAPES = ("circle", "square", "triangle")


def draw(shape: str, seed: int, sketch: bool = False) -> Image.Image:
    """A photo (coloured shape on noise) or a sketch (black outline on white) of ``shape``."""
    rng = np.random.default_rng(seed)
    if sketch:
        img = Image.new("RGB", (56, 56), "white")
    else:
        img = Image.fromarray(rng.integers(150, 255, (40, 48, 3), dtype=np.uint8))
    d = ImageDraw.Draw(img)
    x, y, r = int(rng.integers(16, 30)), int(rng.integers(16, 24)), int(rng.integers(8, 13))
    kw = {"outline": "black", "width": 2} if sketch else {"fill": (200, 40 * len(shape), 60)}
    if shape == "circle":
        d.ellipse((x - r, y - r, x + r, y + r), **kw)
    elif shape == "square":
        d.rectangle((x - r, y - r, x + r, y + r), **kw)
    else:
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], **kw)
    return img


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A bundle, a store with a 12-photo collection 'shapes' (labels from folders), 2 sketches."""
    root = tmp_path_factory.mktemp("query")
    bundle = save_model(create_model("tiny", seed=0), root / "bundle")
    for c, shape in enumerate(SHAPES):
        (root / "photos" / shape).mkdir(parents=True)
        for i in range(4):
            draw(shape, c * 10 + i).save(root / "photos" / shape / f"{i}.jpg")
    sketches = []
    for shape in ("circle", "square"):
        sketches.append(root / f"{shape}_sketch.png")
        draw(shape, 5, sketch=True).save(sketches[-1])
    model = load_bundle(bundle, device="cpu")
    with open_store(path=root / "store") as st:
        ingest([root / "photos"], st, "shapes", model, label_from_folder=True, num_workers=0)
    return root, bundle, model, sketches


@pytest.fixture
def store(setup):
    with open_store(path=setup[0] / "store") as st:
        yield st


def test_several_sketches_in_one_call_ranked_best_first(setup, store):
    _, _, model, sketches = setup
    out = search_sketches(store, "shapes", model, sketches, k=5)
    assert len(out) == 2
    for results in out:
        assert [r.rank for r in results] == [1, 2, 3, 4, 5]
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)
        assert all(Path(r.path).is_file() and r.label in SHAPES for r in results)
    # Without the token re-rank, scores are cosines of global embeddings.
    plain = search_sketches(store, "shapes", model, sketches[:1], k=12, rerank=False)[0]
    assert len(plain) == 12 and all(-1.0 <= r.score <= 1.0 + 1e-5 for r in plain)
    # The same sketch alone gives the same results as in a batch.
    alone = search_sketches(store, "shapes", model, sketches[1:], k=5)[0]
    assert [r.id for r in alone] == [r.id for r in out[1]]


def test_rerank_fuses_the_global_cosine_and_the_mean_maxsim_on_one_scale(setup, store):
    from dmwan_qdrant.search.reranking import RERANK_WEIGHT
    from dmwan_qdrant.search import embed_sketch_files

    _, _, model, sketches = setup
    _, tokens = embed_sketch_files(model, sketches[:1])
    fused = search_sketches(store, "shapes", model, sketches[:1], k=12, rerank=True, prefetch=12)[0]
    plain = search_sketches(store, "shapes", model, sketches[:1], k=12, rerank=False)[0]
    assert {r.id for r in fused} == {r.id for r in plain}  # the same candidates, reordered
    scores = [r.score for r in fused]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 + 1e-5 for s in scores)
    # Each score is (cos + w * mean MaxSim) / (1 + w), from the stored vectors.
    cos = {r.id: r.score for r in plain}
    points = {p.id: p for p in store.read_points("shapes", [r.id for r in fused])}
    q = tokens[0]
    for r in fused:
        doc = np.asarray(points[r.id].tokens)
        maxsim = float((q @ doc.T).max(axis=1).mean())
        assert r.score == pytest.approx((cos[r.id] + RERANK_WEIGHT * maxsim) / (1 + RERANK_WEIGHT), abs=1e-4)


def test_without_rerank_given_the_bundles_choice_decides(setup, store, monkeypatch):
    from dmwan_qdrant.search import embed_sketch_files

    _, _, model, sketches = setup
    plain = search_sketches(store, "shapes", model, sketches[:1], k=12, rerank=False)[0]
    fused = search_sketches(store, "shapes", model, sketches[:1], k=12, rerank=True, prefetch=12)[0]
    # No choice in the card (a bundle without validation classes): no re-rank.
    assert search_sketches(store, "shapes", model, sketches[:1], k=12, prefetch=12)[0] == plain
    monkeypatch.setitem(model.metadata, "card", {"rerank": {"on": True, "weight": 2.0}})
    assert search_sketches(store, "shapes", model, sketches[:1], k=12, prefetch=12)[0] == fused
    assert search_sketches(store, "shapes", model, sketches[:1], k=12, rerank=False)[0] == plain  # asked: off
    # The card's weight is the fusion's: mean MaxSim alone at w = inf.
    monkeypatch.setitem(model.metadata, "card", {"rerank": {"on": True, "weight": float("inf")}})
    alone = search_sketches(store, "shapes", model, sketches[:1], k=12, prefetch=12)[0]
    _, tokens = embed_sketch_files(model, sketches[:1])
    points = {p.id: p for p in store.read_points("shapes", [r.id for r in alone])}
    for r in alone:
        maxsim = float((tokens[0] @ np.asarray(points[r.id].tokens).T).max(axis=1).mean())
        assert r.score == pytest.approx(maxsim, abs=1e-4)
    monkeypatch.setitem(model.metadata, "card", {"rerank": {"on": False, "weight": 2.0}})
    assert search_sketches(store, "shapes", model, sketches[:1], k=12, prefetch=12)[0] == plain


def test_bundle_rerank_reads_the_card_and_falls_back_to_the_default():
    from types import SimpleNamespace

    from dmwan_qdrant.search.reranking import DEFAULT_RERANK, RERANK_WEIGHT, bundle_rerank, resolve_rerank

    def model(choice):
        return SimpleNamespace(metadata={"card": {"rerank": choice}})

    assert bundle_rerank(SimpleNamespace()) == (DEFAULT_RERANK, RERANK_WEIGHT)
    assert bundle_rerank(model(None)) == (DEFAULT_RERANK, RERANK_WEIGHT)
    assert bundle_rerank(model({"on": True, "weight": 0.5})) == (True, 0.5)
    for bad in (-1.0, "2", None, True, float("nan")):
        assert bundle_rerank(model({"on": True, "weight": bad})) == (True, RERANK_WEIGHT)
    assert resolve_rerank(None, model({"on": True, "weight": 1.0})) == (True, 1.0)
    assert resolve_rerank(False, model({"on": True, "weight": 1.0})) == (False, 1.0)
    assert resolve_rerank(True, model(None)) == (True, RERANK_WEIGHT)


def test_fuse_hits_orders_by_the_fused_score_and_keeps_ties_in_cosine_order():
    from dmwan_qdrant.search.reranking import fuse_hits
    from dmwan_qdrant.store import Hit

    cosine = [Hit("a", 0.9, {}), Hit("b", 0.8, {}), Hit("c", 0.7, {}), Hit("d", 0.6, {})]
    maxsim = [Hit("c", 2.0, {}), Hit("b", 1.6, {}), Hit("a", 1.0, {}), Hit("d", 1.8, {})]  # sums over 2 tokens
    fused = fuse_hits(cosine, maxsim, 2.0, 1.0)
    # a: (0.9 + 0.5) / 2 = 0.70, b: (0.8 + 0.8) / 2 = 0.80, c: 0.85, d: 0.75
    assert [h.id for h in fused] == ["c", "b", "d", "a"]
    assert [h.score for h in fused] == pytest.approx([0.85, 0.80, 0.75, 0.70])
    assert [h.id for h in fuse_hits(cosine, maxsim, 2.0, 0.0)] == ["a", "b", "c", "d"]  # w = 0: the cosine order


def test_filter_and_text_search(setup, store):
    _, _, model, sketches = setup
    results = search_sketches(store, "shapes", model, sketches[:1], k=10, filter={"label": "square"})[0]
    assert len(results) == 4 and {r.label for r in results} == {"square"}
    texts = search_text(store, "shapes", model, "a red circle", k=3, filter=parse_filters(["label=circle"]))
    assert len(texts) == 1 and [r.label for r in texts[0]] == ["circle"] * 3
    with pytest.raises(UsageError):
        search_text(store, "shapes", model, "  ")


def test_ef_is_passed_through_and_checked(setup, store, monkeypatch):
    _, _, model, sketches = setup
    want = search_sketches(store, "shapes", model, sketches, k=5)
    assert search_sketches(store, "shapes", model, sketches, k=5, ef=256) == want
    assert len(search_text(store, "shapes", model, "a red circle", k=3, ef=16)[0]) == 3
    # The smallest and a large ef both answer in full.
    for ef in (1, 4096):
        assert [len(r) for r in search_sketches(store, "shapes", model, sketches, k=5, ef=ef, rerank=False)] == [5, 5]
    # 12 points are searched exactly, whatever the ef: what shows it is used is that every kind
    # of query hands it to the store.
    asked: list = []
    search_batch = store.search_batch
    monkeypatch.setattr(store, "search_batch", lambda *a, **kw: asked.append(kw.get("hnsw_ef")) or search_batch(*a, **kw))
    photo = load_image(want[0][0].path)
    assert search_photos(store, "shapes", model, [photo], k=3, rerank=False, ef=1)[0][0].id == want[0][0].id
    like = search_like(store, "shapes", model, [want[0][0].id], k=3, rerank=False, ef=64)[0]
    assert len(like) == 3 and want[0][0].id not in {r.id for r in like}
    search_text(store, "shapes", model, "a red circle", k=3, ef=7)
    search_sketches(store, "shapes", model, sketches, k=3, rerank=True, ef=9)  # the cosine and the MaxSim call
    search_sketches(store, "shapes", model, sketches, k=3, rerank=False)
    assert asked == [1, 64, 7, 9, 9, None]
    for bad in (0, -1, 1.5):
        with pytest.raises(UsageError, match="ef must be a positive integer"):
            search_sketches(store, "shapes", model, sketches, k=5, ef=bad)
        with pytest.raises(UsageError, match="ef must be a positive integer"):
            search_text(store, "shapes", model, "a circle", ef=bad)
        with pytest.raises(UsageError, match="ef must be a positive integer"):
            search_photos(store, "shapes", model, [photo], ef=bad)
        with pytest.raises(UsageError, match="ef must be a positive integer"):
            search_like(store, "shapes", model, [want[0][0].id], ef=bad)


def test_parse_filters():
    assert parse_filters(["label=cat", "width=640", "path=/a=b"]) == {"label": "cat", "width": 640, "path": "/a=b"}
    assert parse_filters(["label=2024"]) == {"label": "2024"}  # folder names stay strings
    for bad in (["label"], ["=x"], ["width=wide"], ["label=a", "label=b"]):
        with pytest.raises(UsageError):
            parse_filters(bad)


def test_collection_model_is_loaded_and_checked(setup, store, tmp_path):
    root, bundle, model, sketches = setup
    assert load_collection_model(store, "shapes").fingerprint == model.fingerprint
    copy = shutil.copytree(bundle, tmp_path / "copy")  # same weights elsewhere: accepted
    assert load_collection_model(store, "shapes", copy).fingerprint == model.fingerprint
    other = save_model(create_model("tiny", seed=1), tmp_path / "other")
    with pytest.raises(ModelMismatchError, match=model.fingerprint):
        load_collection_model(store, "shapes", other)
    with pytest.raises(ModelMismatchError):
        search_sketches(store, "shapes", load_bundle(other), sketches)
    with pytest.raises(CollectionNotFoundError):
        load_collection_model(store, "nope")
    with pytest.raises(CollectionNotFoundError):
        search_sketches(store, "nope", model, sketches)


def test_recorded_bundle_gone_or_missing(setup, tmp_path):
    _, _, _, sketches = setup
    bundle = save_model(create_model("tiny", seed=0), tmp_path / "moved")
    model = load_bundle(bundle)
    with open_store(path=tmp_path / "store") as st:
        ingest([sketches[0]], st, "c", model, num_workers=0)
        shutil.rmtree(bundle)
        with pytest.raises(CheckpointError, match="gone"):
            load_collection_model(st, "c")
        ingest([sketches[0]], st, "live", create_model("tiny", seed=0), num_workers=0)  # no bundle
        with pytest.raises(CheckpointError, match="--model"):
            load_collection_model(st, "live")


def test_unreadable_sketch_is_an_image_error(setup, store, tmp_path):
    _, _, model, sketches = setup
    (tmp_path / "bad.png").write_text("no")
    with pytest.raises(ImageError, match="bad.png"):
        search_sketches(store, "shapes", model, [sketches[0], tmp_path / "bad.png"])


def test_contact_sheet(setup, store, tmp_path):
    _, _, model, sketches = setup
    results = search_sketches(store, "shapes", model, sketches[:1], k=7)[0]
    out = contact_sheet(sketches[0], results, tmp_path / "sheets" / "s.png", thumb=96)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 5 * 96 and im.height > 2 * 96
    # A result whose file disappeared still gets a cell.
    gone = results[0].__class__(1, 0.5, str(tmp_path / "gone.jpg"), None, "x", {})
    assert contact_sheet(sketches[0], [gone], tmp_path / "g.png").is_file()
