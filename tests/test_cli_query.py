"""`dmwan query` and `dmwan collections` end to end, on a collection the CLI ingested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import dmwan_qdrant.cli.collections  # noqa: F401 - registers the commands on `app`
import dmwan_qdrant.cli.ingest  # noqa: F401
import dmwan_qdrant.cli.query  # noqa: F401
from dmwan_qdrant.cli.app import main
from dmwan_qdrant.ingest import ingest
from dmwan_qdrant.model import create_model, get_preset, save_model
from dmwan_qdrant.store import open_store

from cli_helpers import dmwan, one_line_error
from serve_helpers import SHAPES, shape

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A store with collection 'pics' (8 photos, labels circle/square) ingested by the CLI."""
    root = tmp_path_factory.mktemp("cliq")
    bundle = save_model(create_model("tiny", seed=0), root / "bundle")
    for kind in SHAPES:
        (root / "photos" / kind).mkdir(parents=True)
        for i in range(4):
            shape(kind, i, sketch=False).save(root / "photos" / kind / f"{kind}{i}.png")
        shape(kind, 9, sketch=True).save(root / f"{kind}.png")
    store = root / "store"
    try:
        main(["ingest", str(root / "photos"), "-c", "pics", "-m", str(bundle), "--store", str(store),
              "--label-from-folder"])
    except SystemExit as e:
        assert e.code in (0, None)
    return {"root": root, "store": store, "bundle": bundle, "sketches": [root / "circle.png", root / "square.png"]}


def q(capsys, env, *args):
    return dmwan(capsys, "query", *args, "-c", "pics", "--store", env["store"])


def test_table(capsys, env):
    code, out, err = q(capsys, env, env["sketches"][0], "-k", "3")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == f"query: {env['sketches'][0]}"
    assert lines[1].split() == ["rank", "score", "label", "path"] and len(lines) == 5
    rank, score, label, path = lines[2].split()
    assert rank == "1" and float(score) > 0 and label in SHAPES and Path(path).is_file()


def test_json_with_several_sketches_filter_and_no_rerank(capsys, env):
    code, out, _ = q(capsys, env, *env["sketches"], "-k", "3", "--json", "--filter", "label=square", "--no-rerank")
    data = json.loads(out)
    assert code == 0 and data["mode"] == "sketch" and data["rerank"] is False
    assert [x["query"] for x in data["queries"]] == [str(s) for s in env["sketches"]]
    for x in data["queries"]:
        assert [r["rank"] for r in x["results"]] == [1, 2, 3]
        assert all(r["label"] == "square" and -1 <= r["score"] <= 1.0001 for r in x["results"])


def test_every_command_names_its_store(capsys, env):
    for args in (["collections", "list"], ["collections", "info", "pics"], ["query", env["sketches"][0], "-c", "pics"]):
        code, _, err = dmwan(capsys, *args, "--store", env["store"])
        assert code == 0 and f"store: {env['store'].resolve()} (embedded)" in err.splitlines(), args
    code, out, _ = q(capsys, env, env["sketches"][0], "--json")
    assert json.loads(out)["store"] == str(env["store"].resolve())


def test_info_counts_the_labels(capsys, env):
    code, out, _ = dmwan(capsys, "collections", "info", "pics", "--store", env["store"])
    assert code == 0 and "labels       2: circle 4, square 4" in out
    code, out, _ = dmwan(capsys, "collections", "info", "pics", "--store", env["store"], "--json")
    assert json.loads(out)["labels"] == {"circle": 4, "square": 4}


def test_a_device_this_machine_lacks_is_one_line(capsys, env):
    code, _, err = q(capsys, env, env["sketches"][0], "--device", "tpu")
    assert code == 2 and "unknown device 'tpu'" in one_line_error(err)


def test_jsonl_paths_apart_and_a_jpeg_sheet(capsys, env, tmp_path):
    code, out, _ = q(capsys, env, *env["sketches"], "-k", "2", "--jsonl")
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 0 and [x["query"] for x in lines] == [str(s) for s in env["sketches"]]
    assert all(len(x["results"]) == 2 and x["collection"] == "pics" for x in lines)
    code, out, _ = q(capsys, env, *env["sketches"], "-k", "2", "--paths", "--sheet", tmp_path / "sheet.jpg")
    blocks = out.strip().split("\n\n")
    assert code == 0 and [len(b.splitlines()) for b in blocks] == [2, 2]
    assert Image.open(tmp_path / "sheet.jpg").format == "JPEG"
    code, _, err = q(capsys, env, env["sketches"][0], "--jsonl", "--paths")
    assert code == 2 and "exclusive" in one_line_error(err)


def test_paths_and_sheet(capsys, env, tmp_path):
    code, out, _ = q(capsys, env, env["sketches"][1], "-k", "4", "--paths", "--sheet", tmp_path / "sheet.png")
    paths = out.strip().splitlines()
    assert code == 0 and len(paths) == 4 and all(Path(p).is_file() for p in paths)
    with Image.open(tmp_path / "sheet.png") as im:
        assert im.format == "PNG" and im.width > 4 * 100


def test_text_query(capsys, env, tmp_path):
    code, out, _ = q(capsys, env, "--text", "a blue circle", "-k", "2", "--json", "--sheet", tmp_path / "t.png")
    data = json.loads(out)
    assert code == 0 and data["mode"] == "text" and len(data["queries"][0]["results"]) == 2
    assert (tmp_path / "t.png").is_file()


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["{sketch}", "-c", "nope"], 8, "no collection named 'nope'"),
        (["{bad}", "-c", "pics"], 3, "not an image"),
        (["{sketch}", "-c", "pics", "--filter", "label"], 2, "key=value"),
        (["-c", "pics"], 2, "--text"),
        (["{sketch}", "-c", "pics", "--text", "x"], 2, "one kind of query at a time"),
        (["{sketch}", "-c", "pics", "--model", "{nobundle}"], 5, "missing config.json"),
        (["{sketch}", "-c", "pics", "--sheet", "{bad}/sheet.png"], 2, "cannot write the contact sheet"),
    ],
)
def test_query_errors_are_one_line_with_distinct_codes(capsys, env, tmp_path, args, code, words):
    (tmp_path / "bad.png").write_text("not a png")
    subs = {"{sketch}": str(env["sketches"][0]), "{bad}": str(tmp_path / "bad.png"), "{nobundle}": str(tmp_path)}
    args = [subs.get(a, a.replace("{bad}", subs["{bad}"])) for a in args]
    got, _, err = dmwan(capsys, "query", *args, "--store", env["store"])
    assert got == code and words in one_line_error(err)


def test_no_model_recorded_and_server_unreachable(capsys, env, tmp_path, monkeypatch):
    with open_store(path=tmp_path / "s") as st:  # filled from Python with an unsaved model
        ingest([env["sketches"][0]], st, "live", create_model("tiny", seed=0), num_workers=0)
    code, _, err = dmwan(capsys, "query", env["sketches"][0], "-c", "live", "--store", tmp_path / "s")
    assert code == 5 and "--model" in one_line_error(err)
    code, _, err = dmwan(capsys, "query", env["sketches"][0], "-c", "live", "--store", tmp_path / "s",
                         "--model", env["bundle"])
    assert code == 0
    monkeypatch.setattr("dmwan_qdrant.store.retry.RetryPolicy.delay", lambda self, attempt: 0.0)
    code, _, err = dmwan(capsys, "collections", "list", "--url", "http://127.0.0.1:9")
    assert code == 10 and "unreachable" in one_line_error(err)


def test_collections_list_info_optimize_delete(capsys, env, tmp_path):
    store = tmp_path / "s"
    main_args = ["--store", store]
    assert dmwan(capsys, "ingest", env["root"] / "photos" / "circle", "-c", "tmp", "-m", env["bundle"], *main_args)[0] == 0
    code, out, _ = dmwan(capsys, "collections", "list", *main_args)
    assert code == 0 and out.split()[:3] == ["tmp", "4", "points"]
    code, out, _ = dmwan(capsys, "collections", "info", "tmp", "--json", *main_args)
    info = json.loads(out)
    tiny = get_preset("tiny")
    assert (info["points"], info["dim"], info["token_dim"]) == (4, tiny.embed_dim, tiny.token_dim)
    assert info["model"]["bundle"] == str(env["bundle"].resolve())
    code, out, _ = dmwan(capsys, "collections", "info", "tmp", *main_args)
    assert code == 0 and "points       4" in out and "fingerprint" in out
    code, out, _ = dmwan(capsys, "collections", "optimize", "tmp", *main_args)
    assert code == 0 and "optimized 'tmp'" in out
    code, _, err = dmwan(capsys, "collections", "delete", "tmp", *main_args)
    assert code == 2 and "--yes" in one_line_error(err)
    assert dmwan(capsys, "collections", "delete", "tmp", "--yes", *main_args)[0] == 0
    code, out, _ = dmwan(capsys, "collections", "list", *main_args)
    assert out.strip() == "no collections"
    code, _, err = dmwan(capsys, "collections", "info", "tmp", *main_args)
    assert code == 8 and "no collection named 'tmp'" in one_line_error(err)


def test_closed_pipe_stops_quietly(tmp_path):
    """`dmwan ... | head`: the reader closing the pipe ends the command quietly (Click handles EPIPE)."""
    import subprocess
    import sys

    script = (
        "import dmwan_qdrant.cli.app as a\n"
        "@a.app.command()\n"
        "def flood():\n"
        "    while True:\n"
        "        print('x' * 100)\n"
        "a.main(['flood'])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"Traceback" not in err


def _ids(out: str) -> list[list[str]]:
    return [[r["id"] for r in x["results"]] for x in json.loads(out)["queries"]]


def test_sketch_from_stdin_a_url_and_a_folder(capsys, env, tmp_path, monkeypatch):
    import io
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from functools import partial

    sketch = env["sketches"][0]
    _, expected, _ = q(capsys, env, sketch, "--json")
    monkeypatch.setattr("sys.stdin", type("Stdin", (), {"buffer": io.BytesIO(sketch.read_bytes())})())
    code, out, err = q(capsys, env, "-", "--json")
    assert code == 0, err
    assert _ids(out) == _ids(expected) and json.loads(out)["queries"][0]["query"] == "<stdin>"

    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(sketch, served / "s.png")
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        code, out, err = q(capsys, env, f"{base}/s.png", "--json")
        assert code == 0, err
        assert _ids(out) == _ids(expected)
        code, _, err = q(capsys, env, f"{base}/gone.png")
        assert code == 3 and "HTTP 404" in one_line_error(err)
    finally:
        server.shutdown()

    folder = tmp_path / "sketches"
    (folder / "more").mkdir(parents=True)
    shutil.copy(env["sketches"][1], folder / "b.png")
    shutil.copy(sketch, folder / "more" / "a.png")
    (folder / "notes.txt").write_text("not an image")
    code, out, err = q(capsys, env, folder, "--json")
    assert code == 0, err
    assert [x["query"] for x in json.loads(out)["queries"]] == [str(folder / "b.png"), str(folder / "more" / "a.png")]
    (tmp_path / "empty").mkdir()
    code, _, err = q(capsys, env, tmp_path / "empty")
    assert code == 3 and ".png" in one_line_error(err)
    code, _, err = q(capsys, env, "-", "-")
    assert code == 2 and "once" in one_line_error(err)


def test_more_like_a_photo_or_a_stored_point(capsys, env):
    photo = env["root"] / "photos" / "circle" / "circle0.png"
    code, out, err = q(capsys, env, "--photo", photo, "--json", "--no-rerank", "-k", "3")
    assert code == 0, err
    first = json.loads(out)["queries"][0]["results"][0]
    # Embedded as a photo, it is its own stored vector; embedded as a sketch, it is not.
    assert first["path"] == str(photo) and first["score"] == pytest.approx(1.0, abs=1e-4)
    assert json.loads(out)["mode"] == "photo"
    _, as_sketch, _ = q(capsys, env, photo, "--json", "--no-rerank", "-k", "3")
    assert json.loads(as_sketch)["queries"][0]["results"][0]["score"] < 0.9999

    code, out, err = q(capsys, env, "--like", first["id"], "--json", "-k", "3")
    assert code == 0, err
    like = _ids(out)[0]
    assert first["id"] not in like and len(like) == 3
    code, by_file, err = q(capsys, env, "--like", photo, "--json", "-k", "3")
    assert code == 0 and _ids(by_file)[0] == like
    code, _, err = q(capsys, env, "--like", "00000000-0000-0000-0000-000000000000")
    assert code == 2 and "has no point" in one_line_error(err)
    code, _, err = q(capsys, env, "--like", "not-an-id")
    assert code == 2 and "point id" in one_line_error(err)
    code, _, err = q(capsys, env, photo, "--like", first["id"])
    assert code == 2 and "one kind of query" in one_line_error(err)


def test_filters_any_of_ranges_prefix_and_unknown_keys(capsys, env):
    def paths(*args):
        code, out, err = q(capsys, env, env["sketches"][0], "-k", "20", "--json", *args)
        assert code == 0, err
        return sorted(r["path"] for r in json.loads(out)["queries"][0]["results"])

    everything = paths()
    circles = env["root"] / "photos" / "circle"
    assert paths("--filter", "label=circle,square") == everything
    assert paths("--under", circles) == sorted(str(p) for p in circles.glob("*.png"))
    assert paths("--filter", f"path^={circles}/") == paths("--under", circles)
    assert paths("--filter", "width>=1") == everything and paths("--filter", "width<1") == []
    code, _, err = q(capsys, env, env["sketches"][0], "--filter", "lable=circle")
    line = one_line_error(err)
    assert code == 2 and "no point with payload key 'lable'" in line and "label" in line


def test_ef_reaches_the_store_for_every_kind_of_query(capsys, env, monkeypatch):
    from dmwan_qdrant.store.edge import EdgeStore

    code, default, _ = q(capsys, env, *env["sketches"], "-k", "3", "--json")
    asked: list = []
    search_batch = EdgeStore.search_batch

    def recording(self, *args, **kwargs):
        asked.append(kwargs.get("hnsw_ef"))
        return search_batch(self, *args, **kwargs)

    monkeypatch.setattr(EdgeStore, "search_batch", recording)
    code, out, err = q(capsys, env, *env["sketches"], "-k", "3", "--json", "--ef", "1")
    assert code == 0, err
    assert _ids(out) == _ids(default)  # 8 points are searched exactly: ef changes nothing here
    photo = env["root"] / "photos" / "circle" / "circle0.png"
    for args in (["--text", "a circle"], ["--photo", photo], ["--like", photo]):
        asked.clear()
        code, out, err = q(capsys, env, *args, "-k", "2", "--json", "--ef", "300")
        assert code == 0 and len(_ids(out)[0]) == 2, err
        assert asked and set(asked) == {300}, args
    asked.clear()
    assert q(capsys, env, env["sketches"][0], "-k", "2")[0] == 0 and set(asked) == {None}  # the collection's


@pytest.mark.parametrize("ef", ["0", "-1"])
def test_a_bad_ef_is_one_line(capsys, env, ef):
    code, _, err = q(capsys, env, env["sketches"][0], "--ef", ef)
    assert code == 2 and "--ef must be a positive integer" in one_line_error(err)


def test_ef_and_rerank_go_to_the_server_that_holds_the_store(capsys, env, monkeypatch):
    import dmwan_qdrant.cli.query as query_cli
    import dmwan_qdrant.server.client as client
    from dmwan_qdrant.errors import StoreServedError

    def served(*args, **kwargs):
        raise StoreServedError("served", "http://127.0.0.1:9", 1, False)

    calls: list = []
    monkeypatch.setattr(query_cli, "open_cli_store", served)
    monkeypatch.setattr(client, "search_through_server",
                        lambda *a, **kw: calls.append((kw.get("ef"), a[6])) or client.ServerResults([[]], False))
    for args in (["--ef", "64"], [], ["--rerank"]):
        code, _, err = q(capsys, env, env["sketches"][0], *args)
        assert code == 0 and "searching through `dmwan serve`" in err
    # ef and rerank as given; rerank None (not given) leaves it to the collection's model.
    assert calls == [(64, None), (None, None), (None, True)]
