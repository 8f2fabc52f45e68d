"""Embedded-store specifics: reopening, HNSW after optimize, crash leftovers."""

from __future__ import annotations

import uuid

import numpy as np

from dmwan_qdrant.store import CollectionSpec, EdgeStore, PhotoPoint

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
