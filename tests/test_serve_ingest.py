"""An ingest through `dmwan serve` runs beside the searches: they are answered while it runs, its
progress streams to the client, and a Ctrl-C on the client stops the server's run at a batch
boundary with the usual line, after which the same command finishes the job without duplicates."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from serve_helpers import ServeProcess, make_collection, shape

from dmwan_qdrant.server.app import ServeSettings, create_app
from dmwan_qdrant.server.ingest import TOKEN_HEADER
from dmwan_qdrant.server.service import SearchService
from dmwan_qdrant.store import open_store


def _photos(folder, n: int, size: int = 48) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shape("circle" if i % 2 else "square", 100 + i, sketch=False).resize((size, size)).save(folder / f"p{i:04d}.png")


def test_the_stream_carries_progress_then_the_report(tmp_path):
    env = make_collection(tmp_path)
    _photos(tmp_path / "new", 12)
    with open_store(path=env["store"]) as store:
        c = TestClient(create_app(SearchService(store, ["pics"]), ServeSettings(ingest_token="tok")))
        body = {"paths": [str(tmp_path / "new")], "batch_size": 4}
        with c.stream("POST", "/collections/pics/ingest", params={"stream": "true"}, json=body,
                      headers={TOKEN_HEADER: "tok"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
        progress = [m["progress"] for m in lines[:-1]]
        assert [p["done"] for p in progress] == [0, 4, 8, 12] and all(p["total"] == 12 for p in progress)
        assert lines[-1]["report"]["added"] == 12
        # A plain (not streamed) ingest answers with the report, as before.
        again = c.post("/collections/pics/ingest", json=body, headers={TOKEN_HEADER: "tok"})
        assert again.status_code == 200 and again.json()["unchanged"] == 12
        wrong = c.post("/collections/pics/ingest", params={"stream": "true"},
                       json={"paths": [str(tmp_path / "nowhere")]}, headers={TOKEN_HEADER: "tok"})
        assert wrong.status_code == 200  # a stream's errors come as its last line
        assert "no such file" in json.loads(wrong.text.splitlines()[-1])["error"]


def _cli(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dmwan_qdrant.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_searches_are_answered_during_an_ingest_and_ctrl_c_stops_it(tmp_path):
    env = make_collection(tmp_path)
    _photos(tmp_path / "new", 1000, size=96)
    server = ServeProcess("-c", "pics", "--store", env["store"])
    try:
        sketch = env["sketches"][0].read_bytes()
        answered: list[float] = []
        stop = threading.Event()

        def search_loop() -> None:
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    r = client.post(server.url + "/collections/pics/search", files={"sketch": ("s.png", sketch)})
                    assert r.status_code == 200, r.text
                    answered.append(time.monotonic())

        searcher = threading.Thread(target=search_loop, daemon=True)
        searcher.start()
        ingest = _cli("ingest", tmp_path / "new", "-c", "pics", "--store", env["store"], "--batch-size", "4")
        line = ingest.stderr.readline()
        while line and "ingest: 0/1000" not in line:  # the server has started the run
            line = ingest.stderr.readline()
        started = time.monotonic()
        time.sleep(0.3)
        ingest.send_signal(signal.SIGINT)
        out, err = ingest.communicate(timeout=120)
        ended = time.monotonic()
        stop.set()
        searcher.join(timeout=60)
        assert ingest.returncode == 130, err
        stopped = [ln for ln in err.splitlines() if ln.startswith("error: interrupted (Ctrl-C)")]
        assert stopped and "files handled" in stopped[0] and "run the same command again to finish" in stopped[0], err
        assert any(started <= t <= ended for t in answered), "no search was answered while the ingest ran"

        # The server stopped its run: the count settles below the whole folder, then the same
        # command finishes the job, once.
        time.sleep(2)
        info = httpx.get(server.url + "/collections/pics", timeout=30).json()
        assert 10 <= info["points"] < 10 + 1000, info
        again = _cli("ingest", tmp_path / "new", "-c", "pics", "--store", env["store"], "--json")
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        report = json.loads(out)
        assert report["added"] + report["unchanged"] == 1000 and report["added"] == 1000 - (info["points"] - 10)
        assert httpx.get(server.url + "/collections/pics", timeout=30).json()["points"] == 1010
    finally:
        code, rest = server.stop(signal.SIGTERM)
    assert code == 0, rest
