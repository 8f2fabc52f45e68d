"""Faults of the embedded store, tried as an operator meets them: a lost manifest, a crash inside
`create_collection`, a full disk, a read-only medium, damaged vector files, lost segments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dmwan_qdrant.cli.collections  # noqa: F401 - registers the commands on `app`
import dmwan_qdrant.cli.ingest  # noqa: F401
import dmwan_qdrant.cli.query  # noqa: F401
from cli_helpers import dmwan, one_line_error
from dmwan_qdrant.encoder import load_bundle
from dmwan_qdrant.errors import DiskFullError, StoreDamagedError
from dmwan_qdrant.ingest import ingest
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.store import CollectionSpec, EdgeStore, PhotoPoint, disk
from faults import fill_disk, garble, make_photos, remount_read_only, segment_files, tmpfs

REPO = Path(__file__).resolve().parents[1]
DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]
SPEC = CollectionSpec(dim=8, token_dim=4, model={"fingerprint": "faults"})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return save_model(create_model("tiny", seed=0), tmp_path_factory.mktemp("m") / "tiny")


def points(n: int, seed: int = 0) -> list[PhotoPoint]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v = rng.normal(size=8)
        out.append(PhotoPoint(f"00000000-0000-0000-0000-{i:012d}", v / np.linalg.norm(v), rng.normal(size=(3, 4)), {"path": f"/p/{i}"}))
    return out


def run_cli(*args, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), **kw.pop("env", {}))
    return subprocess.run([*DMWAN, *map(str, args)], capture_output=True, text=True, env=env, timeout=300, **kw)


# -- a lost manifest ------------------------------------------------------------------------------


def test_lost_manifest_is_reported_and_never_deleted(tmp_path):
    with EdgeStore(tmp_path) as store:
        store.create_collection("photos", SPEC)
        store.upsert("photos", points(50))
    (tmp_path / "photos" / "collection.json").unlink()
    with EdgeStore(tmp_path) as store:
        assert store.list_collections() == []
        assert "photos" in store.damaged_collections()
        with pytest.raises(StoreDamagedError, match="collections recover photos"):
            store.create_collection("photos", SPEC)  # used to wipe the folder
        with pytest.raises(StoreDamagedError, match="points are kept"):
            store.count("photos")
        store.recover_collection("photos")
        assert store.count("photos") == 50 and store.get_model_record("photos") == SPEC.model


def test_ingest_into_a_collection_that_lost_its_manifest(tmp_path, capsys, bundle):
    photos, store = tmp_path / "photos", tmp_path / "store"
    files = make_photos(photos, 12)
    assert dmwan(capsys, "ingest", photos, "-c", "pics", "-m", bundle, "--store", store, "--workers", "0")[0] == 0
    (store / "pics" / "collection.json").unlink()
    code, _, err = dmwan(capsys, "ingest", photos, "-c", "pics", "-m", bundle, "--store", store, "--workers", "0")
    line = one_line_error(err)
    assert code == StoreDamagedError.exit_code and "dmwan collections recover pics" in line
    code, _, err = dmwan(capsys, "ingest", photos, "-c", "pics", "--store", store)  # no --model either
    assert code == StoreDamagedError.exit_code and "has no manifest" in one_line_error(err)
    code, out, _ = dmwan(capsys, "collections", "list", "--store", store)
    assert code == 0 and "pics" in out and "DAMAGED" in out
    code, out, _ = dmwan(capsys, "collections", "recover", "pics", "--store", store)
    assert code == 0 and f"{len(files)} points" in out
    code, out, _ = dmwan(capsys, "ingest", photos, "-c", "pics", "--store", store, "--workers", "0")
    assert code == 0 and f"{len(files)} unchanged" in out


def test_recover_without_the_shard_copy_needs_and_verifies_the_bundle(tmp_path, capsys, bundle):
    photos, store = tmp_path / "photos", tmp_path / "store"
    make_photos(photos, 6)
    dmwan(capsys, "ingest", photos, "-c", "pics", "-m", bundle, "--store", store, "--workers", "0")
    (store / "pics" / "collection.json").unlink()
    (store / "pics" / "shard" / "dmwan-collection.json").unlink()  # e.g. an older copy of the shard
    code, _, err = dmwan(capsys, "collections", "recover", "pics", "--store", store)
    assert code == StoreDamagedError.exit_code and "--model BUNDLE" in one_line_error(err)
    other = save_model(create_model("tiny", seed=1), tmp_path / "other")
    code, _, err = dmwan(capsys, "collections", "recover", "pics", "--store", store, "--model", other)
    assert code == 9 and "not filled by this model" in one_line_error(err)
    assert not (store / "pics" / "collection.json").exists()  # a wrong guess leaves nothing behind
    code, out, _ = dmwan(capsys, "collections", "recover", "pics", "--store", store, "--model", bundle)
    assert code == 0 and "6 points" in out
    code, out, _ = dmwan(capsys, "collections", "check", "pics", "--store", store)
    assert code == 0 and "intact" in out


CRASH_IN_CREATE = """
import os, sys
import dmwan_qdrant.store.edge as edge
from dmwan_qdrant.store import CollectionSpec, EdgeStore
def dying(folder, manifest):
    os._exit(9)  # killed inside create_collection, after the shard was made
edge.write_manifest = dying
EdgeStore(sys.argv[1]).create_collection("photos", CollectionSpec(8, 4, {"fingerprint": "x"}))
"""


def test_crash_inside_create_leaves_no_collection_folder(tmp_path):
    child = subprocess.run([sys.executable, "-c", CRASH_IN_CREATE, str(tmp_path)],
                           env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    assert child.returncode == 9, child.stderr
    assert not (tmp_path / "photos").exists() and list(tmp_path.glob(".creating-*"))
    with EdgeStore(tmp_path) as store:  # the next writer clears the leftover and can create
        assert not list(tmp_path.glob(".creating-*")) and store.damaged_collections() == {}
        store.create_collection("photos", SPEC)
        assert store.count("photos") == 0


# -- a full disk ----------------------------------------------------------------------------------


def test_ingest_on_a_full_disk_stops_with_one_line(tmp_path, bundle):
    """On a small disk the engine's memory-mapped writes used to die of SIGBUS (exit 135)."""
    photos = tmp_path / "photos"
    make_photos(photos, 8)
    with tmpfs(tmp_path / "small", 8) as small:
        r = run_cli("ingest", photos, "-c", "pics", "-m", bundle, "--store", small / "store", "--workers", "0")
    assert r.returncode == DiskFullError.exit_code, r.stderr
    line = one_line_error(r.stderr)
    assert "disk full" in line and "needs at least" in line


def test_disk_filling_during_ingest_stops_cleanly_then_resumes(tmp_path, bundle):
    photos = tmp_path / "photos"
    files = make_photos(photos, 40)
    model = load_bundle(bundle)
    with tmpfs(tmp_path / "disk", 300) as mnt:
        filler = []

        def fill_after_two_batches(p):
            if p.decoded >= 16 and not filler:
                filler.append(fill_disk(mnt, leave=disk.WRITE_MARGIN // 2))

        with EdgeStore(mnt / "store") as store:
            with pytest.raises(DiskFullError) as e:
                ingest([photos], store, "pics", model, batch_size=8, num_workers=0, progress=fill_after_two_batches)
            assert store.count("pics") == 16
        msg = str(e.value)
        assert msg.startswith("disk full") and "16 points are stored in 'pics'" in msg
        assert "free some space and run the same command again" in msg
        # Read-only commands still work on the full disk (through a private copy).
        r = run_cli("collections", "info", "pics", "--store", mnt / "store", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["points"] == 16, r.stderr
        assert "note: " in r.stderr and "disk is full" in r.stderr
        r = run_cli("query", files[0], "-c", "pics", "--store", mnt / "store", "-k", "3", "--json")
        assert r.returncode == 0 and len(json.loads(r.stdout)["queries"][0]["results"]) == 3, r.stderr
        filler[0].unlink()
        with EdgeStore(mnt / "store") as store:
            report = ingest([photos], store, "pics", model, batch_size=8, num_workers=0)
            assert (report.added, report.unchanged) == (24, 16) and store.count("pics") == 40


def test_free_space_is_checked_before_each_write(tmp_path, monkeypatch):
    """Where no tmpfs can be mounted this still runs: the same check, with the figure patched."""
    with EdgeStore(tmp_path) as store:
        store.create_collection("photos", SPEC)
        store.upsert("photos", points(10))
        monkeypatch.setattr(disk, "free_bytes", lambda path: 10 << 20)
        with pytest.raises(DiskFullError, match="10 MB free"):
            store.upsert("photos", points(10, seed=1))
        assert store.count("photos") == 10


# -- a read-only medium ---------------------------------------------------------------------------


def test_store_on_a_read_only_medium_can_be_searched(tmp_path, capsys, bundle):
    photos = tmp_path / "photos"
    files = make_photos(photos, 8)
    with tmpfs(tmp_path / "ro", 300) as mnt:
        assert dmwan(capsys, "ingest", photos, "-c", "pics", "-m", bundle, "--store", mnt / "s", "--workers", "0")[0] == 0
        expected = json.loads(dmwan(capsys, "query", files[1], "-c", "pics", "--store", mnt / "s", "--json")[1])
        remount_read_only(mnt)
        r = run_cli("query", files[1], "-c", "pics", "--store", mnt / "s", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["queries"] == expected["queries"]
        assert r.stderr.count("read-only file system") == 1  # said once
        r = run_cli("collections", "list", "--store", mnt / "s")
        assert r.returncode == 0 and "pics" in r.stdout
        r = run_cli("ingest", photos, "-c", "pics", "--store", mnt / "s")
        assert r.returncode == 6 and "Read-only file system" in one_line_error(r.stderr)


def test_read_only_commands_do_not_create_a_mistyped_store(tmp_path, capsys):
    for args in (["collections", "list"], ["collections", "info", "x"], ["query", "--text", "a", "-c", "x"]):
        code, _, err = dmwan(capsys, *args, "--store", tmp_path / "typo" / "store")
        assert code == 6 and "no store at" in one_line_error(err)
    assert not (tmp_path / "typo").exists()


# -- damaged vector files and lost segments ---------------------------------------------------------


@pytest.fixture
def ingested(tmp_path, capsys, bundle):
    photos, store = tmp_path / "photos", tmp_path / "store"
    files = make_photos(photos, 30)
    code, _, err = dmwan(capsys, "ingest", photos, "-c", "pics", "-m", bundle, "--store", store,
                         "--workers", "0", "--label-from-folder")
    assert code == 0, err
    return photos, store, files


def test_garbled_vectors_are_found_and_repaired(ingested, capsys):
    photos, store, files = ingested
    code, out, _ = dmwan(capsys, "query", files[0], "-c", "pics", "--store", store, "--json", "-k", "10")
    before = [r["path"] for r in json.loads(out)["queries"][0]["results"]]
    chunk = segment_files(store, "pics", "vector_storage-global/vectors/chunk_*")[0]
    garble(chunk, 0, 4096)
    code, out, _ = dmwan(capsys, "ingest", photos, "-c", "pics", "--store", store)
    assert code == 0 and "30 unchanged" in out  # ingest cannot see it: check can
    code, _, err = dmwan(capsys, "query", files[0], "-c", "pics", "--store", store, "--no-rerank")
    assert code == StoreDamagedError.exit_code and "impossible score" in one_line_error(err)
    code, out, _ = dmwan(capsys, "collections", "check", "pics", "--store", store, "--json")
    report = json.loads(out)
    assert code == 12 and not report["ok"] and report["damaged"], out
    code, out, _ = dmwan(capsys, "collections", "check", "pics", "--store", store, "--repair", "--json")
    fixed = json.loads(out)
    assert code == 0 and fixed["after"]["ok"] and fixed["repair"]["reembedded"] == len(report["damaged"]), out
    assert fixed["after"]["points"] == 30
    code, out, _ = dmwan(capsys, "query", files[0], "-c", "pics", "--store", store, "--json", "-k", "10")
    assert code == 0 and [r["path"] for r in json.loads(out)["queries"][0]["results"]] == before


def test_truncated_vector_file_is_found_and_repaired(ingested, capsys):
    _, store, _ = ingested
    chunk = segment_files(store, "pics", "vector_storage-global/vectors/chunk_*")[0]
    os.truncate(chunk, 1000)
    code, out, _ = dmwan(capsys, "collections", "check", "pics", "--store", store, "--json")
    report = json.loads(out)
    assert code == 12 and any("unreadable" in d["why"] for d in report["damaged"]), out
    code, out, _ = dmwan(capsys, "collections", "check", "pics", "--store", store, "--repair")
    assert code == 0 and "intact: 30 points" in out.splitlines()[-1], out


def test_lost_segments_make_a_short_collection_that_check_and_ingest_restore(ingested, capsys):
    photos, store, _ = ingested
    for seg in (store / "pics" / "shard" / "segments").iterdir():
        shutil.rmtree(seg)
    shutil.rmtree(store / "pics" / "shard" / "wal")
    code, out, _ = dmwan(capsys, "collections", "check", "pics", "--store", store)
    assert code == 12 and "short:" in out and "left 30" in out, out
    code, out, _ = dmwan(capsys, "collections", "check", "pics", "--store", store, "--repair")
    assert code == 0 and "intact: 30 points" in out.splitlines()[-1], out
    # ingest alone restores it too, with labels as first ingested
    for seg in (store / "pics" / "shard" / "segments").iterdir():
        shutil.rmtree(seg)
    shutil.rmtree(store / "pics" / "shard" / "wal")
    code, out, _ = dmwan(capsys, "ingest", photos, "-c", "pics", "--store", store, "--label-from-folder")
    assert code == 0 and "30 added" in out
    assert dmwan(capsys, "collections", "check", "pics", "--store", store)[0] == 0


@pytest.mark.parametrize("kind", ["edge", "memory"])
def test_check_reads_every_point_on_each_backend(tmp_path, kind):
    import hashlib

    from dmwan_qdrant.check import check_collection
    from dmwan_qdrant.ingest import point_id
    from dmwan_qdrant.store import MemoryStore

    store = EdgeStore(tmp_path) if kind == "edge" else MemoryStore()
    with store:
        store.create_collection("photos", SPEC)
        good = []
        for p in points(5):
            h = hashlib.sha256(p.payload["path"].encode()).hexdigest()
            good.append(PhotoPoint(point_id(h), p.vector, p.tokens, {**p.payload, "content_hash": h}))
        store.upsert("photos", good)
        report = check_collection(store, "photos")
        assert report.ok and (report.points, report.listed, report.damaged) == (5, 5, [])
        store.upsert("photos", points(1))  # an id that is not its content's: found
        report = check_collection(store, "photos")
        assert not report.ok and [why for _, why in report.damaged] == ["payload has no content hash"]
