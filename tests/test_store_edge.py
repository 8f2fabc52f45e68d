"""Embedded-store specifics: reopening, HNSW after optimize, crash leftovers, token storage."""

from __future__ import annotations

import json
import uuid

import numpy as np
from cli_helpers import dmwan, one_line_error

from dmwan_qdrant.store import CollectionSpec, EdgeStore, PhotoPoint
from dmwan_qdrant.store.index import LEGACY, IndexSettings

SPEC = CollectionSpec(dim=8, token_dim=4, model={"fingerprint": "edge-test"})


def points(n: int, seed: int = 0) -> list[PhotoPoint]:
    rng = np.random.default_rng(seed)
    return [
        PhotoPoint(
            str(uuid.uuid5(uuid.NAMESPACE_URL, str(i))),
            rng.standard_normal(8),
            rng.standard_normal((3, 4)),
            {"label": f"c{i % 4}", "i": i},
        )
        for i in range(n)
    ]


def test_reopen_keeps_everything(tmp_path):
    q = np.random.default_rng(1).standard_normal(8)
    with EdgeStore(tmp_path) as s:
        s.create_collection("photos", SPEC)
        s.upsert("photos", points(50))
        before = s.search("photos", q, 5, filter={"label": "c1"})
    with EdgeStore(tmp_path) as s:
        assert s.list_collections() == ["photos"]
        assert s.get_model_record("photos") == SPEC.model
        assert s.count("photos") == 50
        assert s.search("photos", q, 5, filter={"label": "c1"}) == before


def test_optimize_builds_hnsw(tmp_path):
    q = np.random.default_rng(1).standard_normal(8)
    with EdgeStore(tmp_path) as s:
        s.create_collection("photos", SPEC)
        s.upsert("photos", points(400))
        assert s.collection_info("photos").index_state == "exact"
        exact = s.search("photos", q, 10)
        s.optimize("photos")
        info = s.collection_info("photos")
        assert info.index_state == "indexed" and info.indexed_vectors >= 400
        assert [h.id for h in s.search("photos", q, 10)] == [h.id for h in exact]


def test_crash_leftovers_are_ignored_and_cleared(tmp_path):
    (tmp_path / "half").mkdir(parents=True)  # a create interrupted before its manifest
    (tmp_path / ".deleting-abc" / "shard").mkdir(parents=True)  # an interrupted delete
    with EdgeStore(tmp_path) as s:
        assert not (tmp_path / ".deleting-abc").exists()
        assert s.list_collections() == [] and not s.collection_exists("half")
        s.create_collection("half", SPEC)
        assert s.list_collections() == ["half"]
        s.delete_collection("half")
        assert s.list_collections() == []
        assert [p.name for p in tmp_path.iterdir()] == [".lock"]


def clustered(n: int, dim: int, n_tok: int, token_dim: int, seed: int = 0):
    """Unit global vectors and tokens around a few centres: neighbours with a real spread of
    scores, as embeddings have (random vectors would all tie)."""
    rng = np.random.default_rng(seed)

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    centres = unit(rng.normal(size=(20, dim)))
    tok_centres = unit(rng.normal(size=(20, n_tok, token_dim)))
    which = rng.integers(0, 20, n)
    g = unit(centres[which] + 0.4 * rng.normal(size=(n, dim)))
    t = unit(tok_centres[which] + 0.6 * rng.normal(size=(n, n_tok, token_dim)))
    return g, t


def test_int8_token_rerank_against_float32(tmp_path):
    """Once optimized, int8 tokens score the re-rank: alone (no rescore) the top 10 is close to
    float32's with scores off by the quantization; rescored, it is float32's (float16 originals)."""
    g, t = clustered(1500, 16, 8, 16)
    qg, qt = clustered(20, 16, 8, 16, seed=1)
    pts = [PhotoPoint(str(uuid.UUID(int=i + 1)), g[i], t[i]) for i in range(len(g))]
    layouts = {
        "float32": IndexSettings(tokens="float32"),
        "int8": IndexSettings(tokens="int8"),
        "alone": IndexSettings(tokens="int8", rescore=False),
    }
    found = {}
    with EdgeStore(tmp_path) as s:
        for name, index in layouts.items():
            s.create_collection(name, CollectionSpec(16, 16, {}, index))
            s.upsert(name, pts)
            s.optimize(name)
            found[name] = s.search_batch(name, qg, 10, rerank_tokens=list(qt), prefetch=100)

    def compare(name: str) -> tuple[float, float]:
        pairs = list(zip(found[name], found["float32"]))
        overlap = np.mean([len({h.id for h in a} & {h.id for h in b}) / 10 for a, b in pairs])
        return overlap, max(abs(a[0].score - b[0].score) for a, b in pairs if a[0].id == b[0].id)

    overlap, diff = compare("int8")
    assert overlap >= 0.98 and diff < 1e-2
    overlap, diff = compare("alone")
    assert overlap >= 0.8 and 1e-3 < diff < 0.05 * qt.shape[1]


def test_collections_info_shows_the_settings(tmp_path, capsys):
    with EdgeStore(tmp_path) as s:
        s.create_collection("photos", SPEC)
        s.create_collection("old", CollectionSpec(8, 4, {}, LEGACY))
    code, out, _ = dmwan(capsys, "collections", "info", "photos", "--store", tmp_path, "--json")
    assert code == 0
    index = json.loads(out)["index"]
    assert index["tokens"] == "int8" and index == IndexSettings().to_dict()
    code, out, _ = dmwan(capsys, "collections", "info", "old", "--store", tmp_path)
    assert code == 0 and "HNSW m=16 ef_construct=100" in out and "tokens float32" in out


def test_recovered_manifest_reads_the_settings_from_the_shard(tmp_path):
    custom = IndexSettings(hnsw_m=8, ef_construct=50, tokens="float16")
    with EdgeStore(tmp_path) as s:
        s.create_collection("photos", CollectionSpec(8, 4, {"fingerprint": "x", "dim": 8, "token_dim": 4}, custom))
    (tmp_path / "photos" / "collection.json").unlink()
    (tmp_path / "photos" / "shard" / "dmwan-collection.json").unlink()
    with EdgeStore(tmp_path) as s:
        s.recover_collection("photos", {"fingerprint": "x", "dim": 8, "token_dim": 4})
        assert s.collection_info("photos").index == IndexSettings(hnsw_m=8, ef_construct=50, tokens="float16")


def test_collections_create_with_settings(tmp_path, capsys):
    from dmwan_qdrant.model import create_model, save_model

    bundle = save_model(create_model("tiny", seed=0), tmp_path / "bundle")
    store = tmp_path / "store"
    args = ["collections", "create", "shoes", "--model", bundle, "--store", store]
    code, out, _ = dmwan(capsys, *args, "--hnsw-m", "8", "--ef", "64", "--tokens", "float16", "--json")
    assert code == 0, out
    assert json.loads(out)["index"] == IndexSettings(hnsw_m=8, hnsw_ef=64, tokens="float16").to_dict()
    code, _, err = dmwan(capsys, "collections", "create", "other", *args[3:], "--tokens", "int4")
    assert code != 0 and "unknown token storage 'int4'" in one_line_error(err)


def test_payload_indexes_lie_on_disk_and_optimize_moves_old_ones(tmp_path):
    """The keyword indexes are memory-mapped (a shard opens without rebuilding them); a
    collection made with in-memory ones gets on-disk ones from `optimize`, and filters answer
    the same before and after."""
    import qdrant_edge as qe

    from dmwan_qdrant.store.edge_config import index_on_disk
    from dmwan_qdrant.store.records import INDEXED_FIELDS

    q = np.random.default_rng(1).standard_normal(8)
    with EdgeStore(tmp_path) as s:
        s.create_collection("photos", SPEC)
        s.upsert("photos", points(60))
        schema = s._shard("photos").info().payload_schema
        assert all(index_on_disk(schema[f]) for f in INDEXED_FIELDS)
        shard = s._shard("photos")
        for field in INDEXED_FIELDS:  # as collections made before were
            shard.update(qe.UpdateOperation.delete_field_index(field))
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        assert not any(index_on_disk(s._shard("photos").info().payload_schema[f]) for f in INDEXED_FIELDS)
        before = s.search("photos", q, 5, filter={"label": "c1"})
    with EdgeStore(tmp_path) as s:
        s.optimize("photos")
        schema = s._shard("photos").info().payload_schema
        assert all(index_on_disk(schema[f]) for f in INDEXED_FIELDS)
        assert s.search("photos", q, 5, filter={"label": "c1"}) == before
