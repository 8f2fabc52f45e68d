"""The defaults a user can leave out: `dmwan ingest` without --model fills a new collection with the
shipped model (dmwan-sketch), `dmwan query` without --collection searches $DMWAN_COLLECTION or the
store's only collection (also through a running `dmwan serve` and on a Qdrant server), `dmwan serve`
without --collection serves every collection.

Nothing here depends on which model is shipped, only that ``dmwan-sketch`` resolves to a bundle.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest

import dmwan_qdrant.cli.collections  # noqa: F401 - registers the commands on `app`
import dmwan_qdrant.cli.ingest  # noqa: F401
import dmwan_qdrant.cli.model  # noqa: F401
import dmwan_qdrant.cli.query  # noqa: F401
import dmwan_qdrant.cli.serve  # noqa: F401
from dmwan_qdrant.errors import CollectionNotFoundError, UsageError
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.model import shipped
from dmwan_qdrant.settings import ENV_COLLECTION
from dmwan_qdrant.store.choosing import choose_collection

from cli_helpers import dmwan, one_line_error
from serve_helpers import ServeProcess, shape


@pytest.fixture(autouse=True)
def _no_collection_from_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_COLLECTION, raising=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two photos, a sketch, a tiny bundle, and a store with collections 'pics' and 'more'."""
    root = tmp_path_factory.mktemp("defaults")
    (root / "photos").mkdir()
    shape("circle", 0, sketch=False).save(root / "photos" / "circle0.png")
    shape("square", 1, sketch=False).save(root / "photos" / "square1.png")
    shape("circle", 9, sketch=True).save(root / "sketch.png")
    bundle = save_model(create_model("tiny", seed=0), root / "bundle")
    two = root / "two"
    for name in ("pics", "more"):
        code = _run("ingest", root / "photos", "-c", name, "-m", bundle, "--store", two)
        assert code == 0
    one = root / "one"
    shutil.copytree(two, one)
    shutil.rmtree(one / "more")
    return {"root": root, "bundle": bundle, "sketch": root / "sketch.png", "one": one, "two": two}


def _run(*args) -> int:
    from dmwan_qdrant.cli.app import main

    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    return 0


# -- the choice itself -------------------------------------------------------------------------


def test_the_choice_of_collection():
    assert choose_collection(["shoes"], env={}) == ("shoes", "the only collection in the store")
    assert choose_collection(["a", "b"], env={ENV_COLLECTION: "b"}) == ("b", f"from ${ENV_COLLECTION}")
    assert choose_collection(["a"], env={ENV_COLLECTION: ""})[0] == "a"  # set but empty: not set
    with pytest.raises(UsageError, match=r"has 2 collections \(a, b\): pass --collection NAME"):
        choose_collection(["b", "a"], env={})
    with pytest.raises(CollectionNotFoundError, match="no collection yet: .*dmwan ingest"):
        choose_collection([], env={})
    with pytest.raises(CollectionNotFoundError, match="names collection 'c', which is not in the store"):
        choose_collection(["a", "b"], env={ENV_COLLECTION: "c"})


# -- ingest: the shipped model -----------------------------------------------------------------


def test_ingest_without_model_fills_a_new_collection_with_the_shipped_model(world, tmp_path, capsys):
    assert shipped.shipped_available(), f"no shipped model at {shipped.shipped_folder()}"
    store = tmp_path / "store"
    code, out, err = dmwan(capsys, "ingest", world["root"] / "photos", "-c", "fresh", "--store", store)
    assert code == 0, err
    assert "model: dmwan-sketch, the shipped sketch model (--model to choose another)" in err.splitlines()
    assert "fresh: 2 added" in out
    code, out, _ = dmwan(capsys, "collections", "info", "fresh", "--store", store, "--json")
    assert code == 0 and json.loads(out)["model"]["name"] == "dmwan-sketch"
    # Again: the collection keeps its recorded model, and says nothing about the default.
    code, out, err = dmwan(capsys, "ingest", world["root"] / "photos", "-c", "fresh", "--store", store)
    assert code == 0 and "2 unchanged" in out and "model: dmwan-sketch" not in err
    # The name works as --model, and the only collection needs no --collection.
    code, out, err = dmwan(capsys, "query", world["sketch"], "--store", store, "-m", "dmwan-sketch", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["collection"] == "fresh" and len(answer["queries"][0]["results"]) == 2


def test_model_info_takes_the_shipped_name(capsys):
    code, out, err = dmwan(capsys, "model", "info", "dmwan-sketch", "--json")
    assert code == 0, err
    card = json.loads(out)
    assert card["name"] == "dmwan-sketch" and card["bundle"] == str(shipped.shipped_folder())


def test_without_the_shipped_model_a_new_collection_asks_for_one(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shipped, "shipped_folder", lambda name=shipped.SHIPPED_MODEL: tmp_path / "gone" / name)
    code, _, err = dmwan(capsys, "ingest", world["root"] / "photos", "-c", "fresh", "--store", tmp_path / "store")
    line = one_line_error(err)
    assert code == 2 and "dmwan-sketch is missing" in line and "give --model BUNDLE" in line
    code, _, err = dmwan(capsys, "model", "info", "dmwan-sketch")
    assert code == 5 and "not in this install" in one_line_error(err)


# -- query: the default collection -------------------------------------------------------------


def test_query_searches_the_only_collection(world, capsys):
    code, out, err = dmwan(capsys, "query", world["sketch"], "--store", world["one"], "-k", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["collection"] == "pics"
    assert "collection: pics (the only collection in the store)" in err.splitlines()


def test_query_with_several_collections_lists_them(world, capsys):
    code, _, err = dmwan(capsys, "query", world["sketch"], "--store", world["two"])
    line = one_line_error(err)
    assert code == 2 and "2 collections (more, pics)" in line and "--collection" in line
    code, out, _ = dmwan(capsys, "query", world["sketch"], "--store", world["two"], "-c", "more", "--json")
    assert code == 0 and json.loads(out)["collection"] == "more"


def test_query_takes_the_collection_from_the_environment(world, monkeypatch, capsys):
    monkeypatch.setenv(ENV_COLLECTION, "more")
    code, out, err = dmwan(capsys, "query", world["sketch"], "--store", world["two"], "--json")
    assert code == 0 and json.loads(out)["collection"] == "more", err
    assert f"collection: more (from ${ENV_COLLECTION})" in err.splitlines()
    monkeypatch.setenv(ENV_COLLECTION, "nope")
    code, _, err = dmwan(capsys, "query", world["sketch"], "--store", world["two"])
    line = one_line_error(err)
    assert code == 8 and "'nope'" in line and "more, pics" in line


def test_query_on_a_store_without_collections_says_to_ingest(world, tmp_path, capsys):
    empty = tmp_path / "empty"
    shutil.copytree(world["one"], empty)
    assert dmwan(capsys, "collections", "delete", "pics", "--yes", "--store", empty)[0] == 0
    code, _, err = dmwan(capsys, "query", world["sketch"], "--store", empty)
    assert code == 8 and "no collection yet" in one_line_error(err) and "dmwan ingest" in err
    code, _, err = dmwan(capsys, "serve", "--store", empty, "--port", "0")
    assert code == 8 and "no collection to serve" in one_line_error(err)


def test_query_on_a_qdrant_server_lists_its_collections(world, capsys):
    from qdrant_stub import QdrantStub

    with QdrantStub() as stub:
        code, _, err = dmwan(capsys, "ingest", world["root"] / "photos", "-c", "pics", "-m", world["bundle"],
                             "--url", stub.url)
        assert code == 0, err
        code, out, err = dmwan(capsys, "query", world["sketch"], "--url", stub.url, "-k", "1", "--json")
        assert code == 0 and json.loads(out)["collection"] == "pics", err


# -- serve: every collection -------------------------------------------------------------------


def test_serve_model_without_collection_needs_a_single_one(world, capsys):
    code, _, err = dmwan(capsys, "serve", "--store", world["two"], "-m", world["bundle"], "--port", "0")
    line = one_line_error(err)
    assert code == 2 and "--model goes with a single collection" in line and "more, pics" in line


@pytest.mark.slow
def test_serve_without_collection_serves_every_one(world, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(world["two"], store)
    server = ServeProcess("--store", store)
    try:
        assert "collections: more, pics (every one in the store; --collection to choose)\n" in server.lines
        assert json.loads((store / ".server.json").read_text())["collections"] == ["more", "pics"]
        assert {c["name"] for c in server.get("/collections").json()["collections"]} == {"more", "pics"}

        def cli(*args, env=None):
            import os

            return subprocess.run([sys.executable, "-m", "dmwan_qdrant.cli", *map(str, args)], capture_output=True,
                                  text=True, timeout=120, env={**os.environ, **(env or {})})

        several = cli("query", world["sketch"], "--store", store)
        assert several.returncode == 2 and "2 collections (more, pics)" in one_line_error(several.stderr)
        chosen = cli("query", world["sketch"], "--store", store, "--json", env={ENV_COLLECTION: "more"})
        assert chosen.returncode == 0, chosen.stderr
        assert "searching through `dmwan serve`" in chosen.stderr and json.loads(chosen.stdout)["collection"] == "more"
    finally:
        code, rest = server.stop(signal.SIGTERM)
    assert code == 0, rest
