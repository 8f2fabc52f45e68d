"""Who may do what on `dmwan serve`: the search key searches and never writes; the write key
ingests only under the server's --ingest-root folders; each refusal tried as an attacker would."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from cli_helpers import dmwan, one_line_error
from serve_helpers import make_collection, shape

from dmwan_qdrant.point_ids import point_id, sha256_file
from dmwan_qdrant.server.app import ServeSettings, create_app
from dmwan_qdrant.server.ingest import TOKEN_HEADER
from dmwan_qdrant.server.service import SearchService
from dmwan_qdrant.store import open_store

SEARCH, WRITE = "search-key", "write-key"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    env = make_collection(tmp_path_factory.mktemp("rights"))
    root = env["root"]
    (root / "incoming" / "ok" / "square").mkdir(parents=True)
    for i in range(3):
        shape("square", 40 + i, sketch=False).save(root / "incoming" / "ok" / "square" / f"new{i}.png")
    (root / "private").mkdir()
    shape("circle", 77, sketch=False).save(root / "private" / "secret.png")
    (root / "incoming" / "bad").mkdir()
    os.symlink(root / "private" / "secret.png", root / "incoming" / "bad" / "link.png")
    os.symlink(root / "private", root / "incoming" / "dirlink")
    store = open_store(path=env["store"])
    service = SearchService(store, ["pics"])
    env["service"] = service
    env["secret_id"] = point_id(sha256_file(root / "private" / "secret.png"))
    yield env
    store.close()


def client(world, **settings) -> TestClient:
    return TestClient(create_app(world["service"], ServeSettings(**settings)))


def ingest(c: TestClient, paths, key: str | None = None, **body):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return c.post("/collections/pics/ingest", json={"paths": [str(p) for p in paths], **body}, headers=headers)


def error(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    return body["error"]


def stored_paths(world) -> list[str]:
    return sorted(p.get("path", "") for _, p in world["service"].store.scroll_payloads("pics"))


def test_each_refusal(world):
    root = world["root"]
    c = client(world, api_key=SEARCH, ingest_key=WRITE, ingest_roots=((root / "incoming").resolve(),))
    before = stored_paths(world)
    ok = root / "incoming" / "ok"
    assert "search key cannot write" in error(ingest(c, [ok], SEARCH), 403)
    assert "search key cannot write" in error(ingest(c, [ok], SEARCH, prune=True), 403)
    assert "--ingest-key" in error(ingest(c, [ok]), 403)
    assert "outside" in error(ingest(c, [root / "private"], WRITE), 403)
    assert "outside" in error(ingest(c, [root / "private" / "secret.png"], WRITE), 403)
    assert "outside" in error(ingest(c, [f"{root}/incoming/../private"], WRITE), 403)
    assert "outside" in error(ingest(c, [root / "incoming" / "dirlink"], WRITE), 403)
    assert "symlink" in error(ingest(c, [root / "incoming" / "bad"], WRITE), 403)
    assert "symlink" in error(ingest(c, [root / "incoming"], WRITE), 403)  # a link out somewhere below
    assert "absolute" in error(ingest(c, ["incoming/ok"], WRITE), 400)
    assert stored_paths(world) == before
    assert c.get(f"/collections/pics/photos/{world['secret_id']}", headers={"Authorization": f"Bearer {SEARCH}"}
                 ).status_code == 404
    # The search key searches; a wrong key gets nothing.
    assert c.get("/collections", headers={"Authorization": f"Bearer {SEARCH}"}).status_code == 200
    assert c.get("/collections", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_the_write_key_ingests_under_its_roots(world):
    root = world["root"]
    c = client(world, api_key=SEARCH, ingest_key=WRITE, ingest_roots=((root / "incoming").resolve(),))
    r = ingest(c, [root / "incoming" / "ok"], WRITE, label_from_folder=True)
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 3
    assert sum(str(root / "incoming" / "ok") in p for p in stored_paths(world)) == 3
    assert c.get("/collections/pics", headers={"Authorization": f"Bearer {WRITE}"}).status_code == 200


def test_no_roots_no_ingest_by_key_and_the_token_still_writes(world):
    root = world["root"]
    c = client(world, api_key=SEARCH, ingest_key=WRITE, ingest_token="tok")
    assert "--ingest-root" in error(ingest(c, [root / "incoming" / "ok"], WRITE), 403)
    # The address file's token (the same user, on the same machine) is not bound to roots.
    r = c.post("/collections/pics/ingest", json={"paths": [str(root / "incoming" / "ok")]}, headers={TOKEN_HEADER: "tok"})
    assert r.status_code == 200, r.text
    wrong = c.post("/collections/pics/ingest", json={"paths": [str(root / "incoming" / "ok")]},
                   headers={TOKEN_HEADER: "guess"})
    assert "--ingest-key" in error(wrong, 403)


def test_serve_refuses_one_key_for_both_rights(capsys, tmp_path):
    code, _, err = dmwan(capsys, "serve", "--store", tmp_path, "--api-key", "k", "--ingest-key", "k")
    assert code != 0 and "different rights" in one_line_error(err)
    code, _, err = dmwan(capsys, "serve", "--store", tmp_path, "--ingest-key", "w", "--ingest-root", tmp_path / "nope")
    assert code != 0 and "not a folder" in one_line_error(err)
