"""`dmwan collections reindex`: a collection embedded again by another model and swapped in.

On a Qdrant server (the stub) searches by the collection's name go on during the reindex,
answered by the old model until the alias moves; an interrupted reindex resumes without
duplicates; a collection from before the alias layout is converted. The memory and embedded
stores are reindexed in place. Model A is the tiny preset, model B another seed with smaller
tokens, so a vector of either model tells which one answered.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import dmwan, one_line_error
from qdrant_stub import QdrantStub
from serve_helpers import SHAPES, shape

import dmwan_qdrant.cli.collections  # noqa: F401 - registers the commands on `app`
import dmwan_qdrant.cli.ingest  # noqa: F401
from dmwan_qdrant.check import check_collection
from dmwan_qdrant.encoder import describe_record, load_bundle, model_record
from dmwan_qdrant.errors import Interrupted, ModelMismatchError, PhotosMissingError, UsageError
from dmwan_qdrant.imageio import load_image
from dmwan_qdrant.ingest import ingest
from dmwan_qdrant.ingest.reindex import reindex_collection
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.runtime import as_array
from dmwan_qdrant.search import check_collection as check_collection_model
from dmwan_qdrant.store import CollectionSpec, EdgeStore, MemoryStore, ServerStore
from dmwan_qdrant.store.aliases import owner

NAME = "pics"
PER_SHAPE = 5


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("reindex-models")
    a = save_model(create_model("tiny", seed=0), root / "a")
    b = save_model(create_model("tiny", seed=1, overrides={"token_dim": 16}), root / "b")
    return {"a": a, "b": b, "A": load_bundle(a, "cpu"), "B": load_bundle(b, "cpu")}


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    files = []
    for kind in SHAPES:
        (tmp_path / "photos" / kind).mkdir(parents=True)
        for i in range(PER_SHAPE):
            f = tmp_path / "photos" / kind / f"{kind}{i}.png"
            shape(kind, i, sketch=False).save(f)
            files.append(f)
    return files


@pytest.fixture
def stub():
    with QdrantStub() as s:
        yield s


def server(stub: QdrantStub) -> ServerStore:
    return ServerStore(stub.url, retries=0, timeout=10)


def fill(store, photos, model) -> None:
    ingest([photos[0].parent.parent], store, NAME, model, label_from_folder=True, num_workers=0)


def vector(model, path: Path) -> np.ndarray:
    return as_array(model.embed_photos([load_image(path)]).global_)[0]


def answers_with(store, model, path: Path) -> bool:
    """Whether ``store`` answers a search for the photo ``path`` with its own point at cosine 1,
    as a collection filled by ``model`` does."""
    hit = store.search(NAME, vector(model, path), 1)[0]
    return hit.payload["path"] == str(path) and hit.score > 0.999


def physical(store) -> list[str]:
    return sorted(c for c in store.layout().collections if owner(c) == NAME)


def reindex(store, model, **kw):
    kw.setdefault("num_workers", 0)
    kw.setdefault("batch_size", 2)
    return reindex_collection(store, NAME, model, **kw)


# -- the alias layout --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "stub"])
def test_a_collection_is_an_alias_of_a_hidden_physical_one(kind, stub):
    st = MemoryStore() if kind == "memory" else server(stub)
    spec = CollectionSpec(4, 3, {"fingerprint": "x"})
    st.create_collection(NAME, spec)
    layout = st.layout()
    (phys,) = layout.collections
    assert owner(phys) == NAME and layout.aliases == {NAME: phys}
    assert st.list_collections() == [NAME] and st.collection_exists(NAME)
    st.create_physical(NAME, f"{NAME}.0123abcd", spec)  # a leftover of an interrupted run: hidden
    st.create_physical("old", "old", spec)  # a collection from before the alias layout: listed
    assert st.list_collections() == ["old", NAME]
    with pytest.raises(UsageError):
        st.create_collection(phys, spec)  # a physical name is no collection name
    st.delete_collection(NAME)
    assert st.layout().collections == {"old"} and st.layout().aliases == {}
    st.close()


# -- a Qdrant server ---------------------------------------------------------------------------


def test_server_searches_go_on_during_the_reindex_and_the_alias_moves(stub, photos, bundles):
    A, B = bundles["A"], bundles["B"]
    st = server(stub)
    fill(st, photos, A)
    before = dict(st.scroll_payloads(NAME))
    old_physical = physical(st)
    reader = server(stub)  # another client, as a search service would be
    during: list[bool] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def search_all_the_time() -> None:
        other = server(stub)
        while not stop.is_set():
            try:
                other.search(NAME, vector(A, photos[0]), 3)
            except BaseException as e:  # noqa: BLE001 - any failure is what the test looks for
                failures.append(e)

    def progress(p) -> None:
        during.append(answers_with(reader, A, photos[p.done % len(photos)]))

    thread = threading.Thread(target=search_all_the_time)
    thread.start()
    try:
        report = reindex(st, B, progress=progress)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert len(during) > 3 and all(during)  # answered by model A until the swap
    assert (report.points, report.reembedded, report.resumed, report.after) == (10, 10, 0, 10)
    assert "moved" in report.swap and "in one atomic step" in report.plan
    assert answers_with(reader, B, photos[3]) and not answers_with(reader, A, photos[3])
    info = reader.collection_info(NAME)
    assert info.model["fingerprint"] == model_record(B)["fingerprint"] and info.token_dim == 16
    assert dict(reader.scroll_payloads(NAME)) == before  # same ids, same payloads (labels included)
    assert st.count(NAME) == 10 and st.list_collections() == [NAME]
    assert len(physical(st)) == 1 and physical(st) != old_physical  # the old one is gone
    # A long-lived reader still holding model A is refused within a second, never answered by B.
    time.sleep(ServerStore.manifest_ttl + 0.05)
    with pytest.raises(ModelMismatchError, match="was filled by model tiny"):
        check_collection_model(reader, NAME, A)


def test_server_keep_old_keeps_it_under_another_name(stub, photos, bundles):
    st = server(stub)
    fill(st, photos, bundles["A"])
    report = reindex(st, bundles["B"], keep_old=f"{NAME}-previous")
    assert "kept as 'pics-previous'" in report.swap
    assert st.list_collections() == [NAME, f"{NAME}-previous"]
    assert st.get_model_record(f"{NAME}-previous")["fingerprint"] == model_record(bundles["A"])["fingerprint"]
    hit = st.search(f"{NAME}-previous", vector(bundles["A"], photos[2]), 1)[0]
    assert hit.payload["path"] == str(photos[2]) and hit.score > 0.999
    st.delete_collection(f"{NAME}-previous")
    assert st.list_collections() == [NAME] and len(physical(st)) == 1
    with pytest.raises(UsageError, match="a collection of that name exists"):
        reindex(st, bundles["A"], keep_old=NAME)


def test_server_interrupted_reindex_resumes_without_duplicates(stub, photos, bundles):
    A, B = bundles["A"], bundles["B"]
    st = server(stub)
    fill(st, photos, A)
    ids = set(dict(st.scroll_payloads(NAME)))

    def ctrl_c(p) -> None:
        if p.decoded >= 4:
            raise Interrupted("interrupted", signal.SIGINT)

    with pytest.raises(Interrupted) as e:
        reindex(st, B, progress=ctrl_c)
    assert e.value.exit_code == 130 and str(e.value) == (
        "interrupted (Ctrl-C): 4 of 10 photos handled; 'pics' is unchanged and still answers with model "
        f"{describe_record(model_record(A))}; run the same command again to finish (the photos embedded so far "
        "are kept for it)")
    # Nothing changed for the collection's readers; the partial copy waits, hidden.
    assert answers_with(st, A, photos[0]) and st.list_collections() == [NAME]
    assert st.get_model_record(NAME)["fingerprint"] == model_record(A)["fingerprint"]
    assert len(physical(st)) == 2
    report = reindex(st, B)
    assert report.resumed == 4 and report.reembedded == 6 and report.after == 10
    assert set(dict(st.scroll_payloads(NAME))) == ids and st.count(NAME) == 10
    assert len(physical(st)) == 1 and answers_with(st, B, photos[9])
    assert check_collection(st, NAME).ok


def test_server_catches_up_with_changes_made_during_the_reindex(stub, photos, bundles, tmp_path):
    A, B = bundles["A"], bundles["B"]
    st = server(stub)
    fill(st, photos, A)
    extra = tmp_path / "photos" / "circle" / "late.png"
    gone_id = next(pid for pid, p in st.scroll_payloads(NAME) if p["path"] == str(photos[-1]))
    writer = server(stub)

    def ingest_meanwhile(p) -> None:
        if p.decoded == 2 and not extra.exists():
            shape("circle", 42, sketch=False).save(extra)
            fill(writer, photos, A)  # the old model still fills the old collection
            writer.delete_points(NAME, [gone_id])

    report = reindex(st, B, progress=ingest_meanwhile)
    paths = {p["path"] for _, p in st.scroll_payloads(NAME)}
    assert str(extra) in paths and str(photos[-1]) not in paths
    assert report.after == 10 and answers_with(st, B, extra)


def test_server_converts_a_collection_from_before_the_alias_layout(stub, photos, bundles, monkeypatch):
    A, B = bundles["A"], bundles["B"]
    st = server(stub)
    rec = model_record(A)
    st.create_physical(NAME, NAME, CollectionSpec(rec["dim"], rec["token_dim"], rec))  # the old layout
    fill(st, photos, A)
    assert st.layout().aliases == {} and st.list_collections() == [NAME]
    # A crash between deleting the old collection and making the alias: the name is gone...
    real = ServerStore.update_aliases
    monkeypatch.setattr(ServerStore, "update_aliases", lambda *a: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError):
        reindex(st, B)
    assert not st.collection_exists(NAME)
    monkeypatch.setattr(ServerStore, "update_aliases", real)
    # ...and the same command run again gives it back, complete, with the new model.
    report = reindex(st, B)
    assert report.finished_swap and report.already and report.after == 10
    layout = st.layout()
    assert NAME not in layout.collections and owner(layout.aliases[NAME]) == NAME
    assert answers_with(st, B, photos[1])
    # A conversion without a crash says what it did.
    other = server(stub)
    rec = model_record(B)
    other.delete_collection(NAME)
    other.create_physical(NAME, NAME, CollectionSpec(rec["dim"], rec["token_dim"], rec))
    fill(other, photos, B)
    with pytest.raises(UsageError, match="predates the alias layout.*cannot be kept"):
        reindex(other, A, keep_old=f"{NAME}-previous")
    report = reindex(other, A)
    assert "predates the alias layout" in report.plan and "converted" in report.swap
    assert answers_with(other, A, photos[1]) and other.list_collections() == [NAME]


# -- the memory and embedded stores ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "edge"])
def test_in_place_reindex(kind, tmp_path, photos, bundles):
    A, B = bundles["A"], bundles["B"]
    st = MemoryStore() if kind == "memory" else EdgeStore(tmp_path / "store")
    fill(st, photos, A)
    before = dict(st.scroll_payloads(NAME))
    report = reindex(st, B)
    assert (report.points, report.after, report.left_out) == (10, 10, [])
    assert st.get_model_record(NAME)["fingerprint"] == model_record(B)["fingerprint"]
    assert st.collection_info(NAME).token_dim == 16
    assert dict(st.scroll_payloads(NAME)) == before
    assert answers_with(st, B, photos[4]) and check_collection(st, NAME).ok
    again = ingest([photos[0].parent.parent], st, NAME, B, label_from_folder=True, num_workers=0)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 10)  # nothing to read again
    if kind == "edge":
        assert st.ingest_record(NAME)["points"] == 10
        assert [p.name for p in st.path.iterdir() if p.name.startswith(".creating")] == []
    assert reindex(st, B).already  # the same model again: nothing to do
    st.close()


def test_edge_interrupted_reindex_leaves_the_collection_and_keep_old(tmp_path, photos, bundles):
    A, B = bundles["A"], bundles["B"]
    st = EdgeStore(tmp_path / "store")
    fill(st, photos, A)

    def crash(p) -> None:
        if p.decoded >= 4:
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        reindex(st, B, progress=crash)
    assert st.get_model_record(NAME)["fingerprint"] == model_record(A)["fingerprint"]
    assert st.count(NAME) == 10 and answers_with(st, A, photos[0])
    assert [p.name for p in st.path.iterdir() if p.name.startswith(".")] == [".lock"]
    report = reindex(st, B, keep_old=f"{NAME}-previous")
    assert "kept as 'pics-previous'" in report.swap
    assert st.list_collections() == [NAME, f"{NAME}-previous"]
    assert answers_with(st, B, photos[0])
    assert st.get_model_record(f"{NAME}-previous")["fingerprint"] == model_record(A)["fingerprint"]
    st.close()
    with EdgeStore(tmp_path / "store") as again:  # what a later process sees
        assert again.count(f"{NAME}-previous") == 10 and again.count(NAME) == 10


def test_photos_gone_or_changed_refuse_unless_dropped(tmp_path, photos, bundles):
    A, B = bundles["A"], bundles["B"]
    st = MemoryStore()
    fill(st, photos, A)
    photos[0].unlink()
    with pytest.raises(PhotosMissingError, match=r"1 of 10 photos of 'pics' cannot be embedded again: .*circle0.png "
                                                 r"\(file gone\); 'pics' is left as it was") as e:
        reindex(st, B)
    assert e.value.exit_code == 14 and "\n" not in str(e.value)
    assert st.get_model_record(NAME)["fingerprint"] == model_record(A)["fingerprint"]
    assert len(physical(st)) == 1  # nothing was built
    shape("circle", 0, sketch=False).save(photos[0])  # back, with the same bytes
    shape("square", 77, sketch=False).save(photos[1])  # other bytes under a stored path
    with pytest.raises(PhotosMissingError, match=r"1 of 10 .*other bytes than when it was stored\); 'pics' was left "
                                                 r"as it was: .* \(the photos embedded so far are kept for the next run\)"):
        reindex(st, B)
    assert st.get_model_record(NAME)["fingerprint"] == model_record(A)["fingerprint"]
    photos[2].unlink()  # embedded by the refused run already: carried over all the same
    report = reindex(st, B, drop_missing=True)
    assert (report.resumed, report.reembedded, report.after) == (9, 0, 9)
    assert report.left_out == [(str(photos[1]), "the file holds other bytes than when it was stored")]
    assert st.get_model_record(NAME)["fingerprint"] == model_record(B)["fingerprint"]


# -- the command -------------------------------------------------------------------------------


def test_cli_reindex_on_the_embedded_store(capsys, tmp_path, photos, bundles):
    store = tmp_path / "store"
    code, _, _ = dmwan(capsys, "ingest", photos[0].parent.parent, "-c", NAME, "-m", bundles["a"], "--store", store,
                       "--label-from-folder", "--workers", "0")
    assert code == 0
    code, out, err = dmwan(capsys, "collections", "reindex", NAME, "--model", bundles["b"], "--store", store,
                           "--workers", "0")
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"reindexed '{NAME}' (edge): model tiny ")
    assert "10 points: 10 embedded again, 0 from an interrupted run, 0 left out; 10 points now" in out
    assert "note: 'pics' is rebuilt in place" in err and "refused as 'in use'" in err
    code, out, _ = dmwan(capsys, "collections", "info", NAME, "--store", store, "--json")
    info = json.loads(out)
    assert info["model"]["fingerprint"] == model_record(bundles["B"])["fingerprint"] and info["token_dim"] == 16
    assert info["labels"] == {"circle": 5, "square": 5}
    code, out, _ = dmwan(capsys, "collections", "reindex", NAME, "-m", bundles["b"], "--store", store, "--json")
    assert code == 0 and json.loads(out)["already"] is True
    code, out, _ = dmwan(capsys, "collections", "reindex", NAME, "-m", bundles["b"], "--store", store)
    assert code == 0 and "is already filled by model" in out and "nothing to do" in out


def test_cli_reindex_on_a_server_and_its_errors(capsys, stub, tmp_path, photos, bundles):
    fill(server(stub), photos, bundles["A"])
    photos[2].unlink()
    args = ("collections", "reindex", NAME, "-m", bundles["b"], "--url", stub.url, "--workers", "0")
    code, _, err = dmwan(capsys, *args)
    assert code == 14 and "--drop-missing" in one_line_error(err)
    code, out, err = dmwan(capsys, *args, "--drop-missing", "--json")
    data = json.loads(out)
    assert code == 11 and data["after"] == 9 and data["left_out"] == [{"path": str(photos[2]), "why": "file gone"}]
    assert "moves to it in one atomic step" in err
    code, out, _ = dmwan(capsys, "collections", "info", NAME, "--url", stub.url, "--json")
    assert json.loads(out)["model"]["fingerprint"] == model_record(bundles["B"])["fingerprint"]
    code, out, _ = dmwan(capsys, "collections", "list", "--url", stub.url)
    assert code == 0 and out.split()[0] == NAME and len(out.strip().splitlines()) == 1
    code, _, err = dmwan(capsys, "collections", "reindex", "nope", "-m", bundles["b"], "--url", stub.url)
    assert code == 8 and "no collection named 'nope' (collections: pics)" in one_line_error(err)
    code, _, err = dmwan(capsys, "collections", "reindex", NAME, "-m", tmp_path / "nobundle", "--url", stub.url)
    assert code == 5 and one_line_error(err)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, _, err = dmwan(capsys, "collections", "reindex", NAME, "-m", bundles["b"], "--store", tmp_path / "none")
    assert code == 6 and "no store at" in one_line_error(err)
