"""`dmwan ingest --include/--exclude` (which files become points, what --prune leaves) and
`--export` (.npy + sidecar, .parquet): rows, ids, paths and vectors as the store holds them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dmwan_qdrant.cli.collections  # noqa: F401 - registers the commands on `app`
import dmwan_qdrant.cli.ingest  # noqa: F401
from cli_helpers import dmwan, one_line_error
from dmwan_qdrant.errors import StoreError
from dmwan_qdrant.ingest import export as export_mod
from dmwan_qdrant.ingest.selection import Selection
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.store import open_store

TREE = ("a/000.jpg", "a/001.png", "b/keep.jpg", "b/tmp/x.jpg", "b/deep/tmp/y.jpg", "thumbs/t.jpg", "thumbs/s/u.jpg")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return save_model(create_model("tiny", seed=0), tmp_path_factory.mktemp("m") / "tiny")


def make_tree(root: Path, names: tuple[str, ...] = TREE, seed: int = 0) -> dict[str, Path]:
    """Small random images at the given relative paths."""
    rng = np.random.default_rng(seed)
    files = {}
    for i, name in enumerate(names):
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)).save(f)
        files[name] = f
    return files


def stored_paths(store: Path, collection: str, st=None) -> list[str]:
    """The paths in a collection, sorted (through ``st`` when the store is open already)."""
    if st is not None:
        return sorted(p["path"] for _, p in st.scroll_payloads(collection, ["path"]))
    with open_store(path=store) as opened:
        return stored_paths(store, collection, opened)


def has_collection(store: Path, collection: str) -> bool:
    with open_store(path=store) as st:
        return st.collection_exists(collection)


def info_points(capsys, store: Path, collection: str) -> int:
    code, out, _ = dmwan(capsys, "collections", "info", collection, "--store", store, "--json")
    assert code == 0
    return json.loads(out)["points"]


@pytest.mark.parametrize(
    ("include", "exclude", "taken"),
    [
        ((), ("**/tmp/**",), {"a/000.jpg", "a/001.png", "b/keep.jpg", "thumbs/t.jpg", "thumbs/s/u.jpg"}),
        (("*.jpg",), ("thumbs/*",), {"a/000.jpg", "b/keep.jpg", "b/tmp/x.jpg", "b/deep/tmp/y.jpg"}),
        (("a", "b/*.jpg"), (), {"a/000.jpg", "a/001.png", "b/keep.jpg"}),
        (("**/tmp/*.jpg",), ("/b/tmp",), {"b/deep/tmp/y.jpg"}),
        ((), ("tmp/", "thumbs"), {"a/000.jpg", "a/001.png", "b/keep.jpg"}),
        (("?0[!0].*",), (), {"a/001.png"}),
    ],
)
def test_selection_semantics(include, exclude, taken):
    sel = Selection(include, exclude)
    assert {name for name in TREE if sel.selects(name)} == taken


def test_include_exclude_choose_the_points_and_prune_leaves_excluded_ones(tmp_path, capsys, bundle):
    files = make_tree(tmp_path / "photos")
    store = tmp_path / "store"
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "-m", bundle, "--store", store,
                         "--include", "*.jpg", "--exclude", "thumbs/*", "--exclude", "**/tmp/**", "--json")
    report = json.loads(out)
    assert code == 0 and (report["found"], report["added"]) == (2, 2)
    assert stored_paths(store, "pics") == sorted(str(files[n]) for n in ("a/000.jpg", "b/keep.jpg"))
    assert info_points(capsys, store, "pics") == 2
    # Everything in; then a run that excludes thumbs/ with --prune leaves their points alone,
    # also when an excluded file is gone (not counted as missing either).
    dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store)
    files["thumbs/t.jpg"].unlink()
    files["a/000.jpg"].unlink()
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store,
                         "--exclude", "thumbs", "--json")
    report = json.loads(out)
    assert (report["found"], report["unchanged"], report["missing"]) == (4, 4, 1)
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store,
                         "--exclude", "thumbs", "--prune", "--json")
    report = json.loads(out)
    assert (report["found"], report["pruned"]) == (4, 1)
    assert str(files["thumbs/t.jpg"]) in stored_paths(store, "pics") and info_points(capsys, store, "pics") == 6
    # Plain --prune, no patterns: the gone excluded file goes now.
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "--prune", "--json")
    assert json.loads(out)["pruned"] == 1 and info_points(capsys, store, "pics") == 5


def test_no_match_error_names_the_patterns(tmp_path, capsys, bundle):
    make_tree(tmp_path / "photos", ("a/x.jpg",))
    code, _, err = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "-m", bundle, "--store",
                         tmp_path / "store", "--include", "*.gif", "--exclude", "a")
    line = one_line_error(err)
    assert code == 2 and "--include '*.gif' --exclude 'a'" in line and "was not created" in line


def test_export_npy_then_rerun_writes_the_same_rows(tmp_path, capsys, bundle):
    files = make_tree(tmp_path / "photos", ("a/0.jpg", "a/1.jpg", "b/2.png", "b/dup.jpg"))
    files["b/dup.jpg"].write_bytes(files["a/0.jpg"].read_bytes())  # a duplicate: one point, one row
    make_tree(tmp_path / "elsewhere", ("z.jpg",), seed=1)  # not exported: not under PATHS
    store, out_file = tmp_path / "store", tmp_path / "emb.npy"
    dmwan(capsys, "ingest", tmp_path / "elsewhere", "-c", "pics", "-m", bundle, "--store", store)
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "--label-from-folder",
                         "--export", out_file, "--json")
    report = json.loads(out)
    sidecar = tmp_path / "emb.npy.ids.json"
    assert code == 0 and report["export"] == {"file": str(out_file), "format": "npy", "rows": 3,
                                              "sidecar": str(sidecar)}
    matrix, meta = np.load(out_file), json.loads(sidecar.read_text())
    assert matrix.dtype == np.float32 and matrix.shape == (3, meta["dim"]) and meta["rows"] == 3
    assert meta["paths"] == sorted(str(files[n]) for n in ("a/0.jpg", "a/1.jpg", "b/2.png"))
    assert meta["labels"] == ["a", "a", "b"]
    with open_store(path=store) as st:
        points = st.read_points("pics", meta["ids"])
    assert [p.payload["path"] for p in points] == meta["paths"]
    assert np.allclose(matrix, np.stack([p.vector for p in points]))
    # Again: nothing embedded, the same rows, summary line says so; no temporary file left.
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "--export", out_file)
    assert code == 0 and "3 unchanged" in out and f"exported 3 points to {out_file}" in out
    assert np.array_equal(np.load(out_file), matrix) and json.loads(sidecar.read_text()) == meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "emb.npy", "emb.npy.ids.json", "photos", "store"]


def test_export_parquet_rows_vectors_and_tokens(tmp_path, capsys, bundle):
    pq = pytest.importorskip("pyarrow.parquet")
    make_tree(tmp_path / "photos", ("a/0.jpg", "b/1.jpg", "b/2.jpg"))
    store, out_file = tmp_path / "store", tmp_path / "emb.parquet"
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "-m", bundle, "--store", store,
                         "--label-from-folder", "--export", out_file, "--json")
    assert code == 0 and json.loads(out)["export"]["rows"] == 3
    table = pq.read_table(out_file)
    assert table.column_names == ["id", "path", "label", "vector", "tokens"]
    rows = table.to_pylist()
    with open_store(path=store) as st:
        points = st.read_points("pics", [r["id"] for r in rows])
    assert [r["path"] for r in rows] == sorted(p.payload["path"] for p in points) == [p.payload["path"] for p in points]
    assert [r["label"] for r in rows] == ["a", "b", "b"]
    for r, p in zip(rows, points):
        assert np.allclose(np.asarray(r["vector"], np.float32), p.vector)
        assert np.allclose(np.asarray(r["tokens"], np.float32), p.tokens)


def test_bad_export_target_is_refused_before_anything(tmp_path, capsys, bundle, monkeypatch):
    make_tree(tmp_path / "photos", ("a/0.jpg",))
    args = ("ingest", tmp_path / "photos", "-c", "pics", "-m", bundle, "--store", tmp_path / "store", "--export")
    code, _, err = dmwan(capsys, *args, tmp_path / "emb.csv")
    line = one_line_error(err)
    assert code == 2 and ".npy" in line and ".parquet" in line
    code, _, err = dmwan(capsys, *args, tmp_path / "no" / "emb.npy")
    assert code == 2 and "does not exist" in one_line_error(err)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    code, _, err = dmwan(capsys, *args, tmp_path / "emb.parquet")
    assert code == 2 and "pip install pyarrow" in one_line_error(err)
    assert not (tmp_path / "store").exists() or not has_collection(tmp_path / "store", "pics")


def test_an_export_that_fails_midway_leaves_no_file(tmp_path, capsys, bundle, monkeypatch):
    make_tree(tmp_path / "photos", ("a/0.jpg", "a/1.jpg", "a/2.jpg"))
    store = tmp_path / "store"
    dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "-m", bundle, "--store", store)
    monkeypatch.setattr(export_mod, "PAGE", 2)
    with open_store(path=store) as st:
        ids = [i for i, _ in export_mod.exported_ids(st, "pics", set(stored_paths(store, "pics", st)))]
        real = st.read_points
        calls = []

        def flaky(name, wanted):
            calls.append(len(wanted))
            return real(name, wanted)[1:] if len(calls) == 2 else real(name, wanted)  # a point vanishes

        monkeypatch.setattr(st, "read_points", flaky)
        for suffix in (".npy", ".parquet"):
            calls.clear()
            with pytest.raises(StoreError, match="during the export"):
                export_mod.export_points(st, "pics", ids, tmp_path / f"out{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "store"]


def test_repair_restores_with_the_patterns_the_folder_was_ingested_with(tmp_path, capsys, bundle):
    files = make_tree(tmp_path / "photos")
    store = tmp_path / "store"
    code, _, err = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "-m", bundle, "--store", store,
                         "--exclude", "thumbs")
    assert code == 0, err
    kept = stored_paths(store, "pics")
    with open_store(path=store) as st:  # a point lost behind the tool's back
        lost = next(pid for pid, p in st.scroll_payloads("pics", ["path"]) if p["path"] == str(files["a/000.jpg"]))
        st.delete_points("pics", [lost])
    code, out, err = dmwan(capsys, "collections", "check", "pics", "--store", store, "--repair", "--json")
    assert code == 0, err
    assert json.loads(out)["repair"]["restored"] == 1
    assert stored_paths(store, "pics") == kept  # the excluded thumbs/ stayed out
