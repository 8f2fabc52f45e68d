"""`dmwan serve` as a user runs it: a real process on loopback, the CLI going through it while it
holds the store, clean stops, and one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest

from cli_helpers import dmwan, one_line_error
from serve_helpers import ServeProcess, make_collection

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_collection(tmp_path_factory.mktemp("servecli"))


def cli(*args: object, env_vars: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "dmwan_qdrant.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env_vars or {})})


def same_answer(a: dict, b: dict) -> bool:
    """Equal `dmwan query --json` answers; scores to 1e-5, since the server's encoder runs on
    fewer torch threads (`--threads`), which changes float sums in the last digit."""
    def strip(x: dict) -> list:
        return [(q.get("query"), [{**r, "score": None} for r in q["results"]]) for q in x["queries"]]

    def scores(x: dict) -> list:
        return [r["score"] for q in x["queries"] for r in q["results"]]

    return ({**a, "queries": strip(a)} == {**b, "queries": strip(b)}
            and scores(a) == pytest.approx(scores(b), abs=1e-5))


def test_the_cli_goes_through_a_running_server(env, capsys):
    sketches = env["sketches"]
    code, direct, _ = dmwan(capsys, "query", *sketches, "-c", "pics", "--store", env["store"], "-k", "4", "--json")
    assert code == 0
    server = ServeProcess("-c", "pics", "--store", env["store"])
    try:
        assert server.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        address = json.loads((env["store"] / ".server.json").read_text())
        assert address["url"] == server.url and address["pid"] == server.proc.pid
        assert server.get("/readyz").status_code == 200

        through = cli("query", *sketches, "-c", "pics", "--store", env["store"], "-k", "4", "--json")
        assert through.returncode == 0, through.stderr
        assert same_answer(json.loads(through.stdout), json.loads(direct))
        assert f"searching through `dmwan serve` at {server.url}" in through.stderr

        photo = env["root"] / "photos" / "circle" / "circle0.png"
        for args in (("--photo", photo), ("--like", photo)):  # more like this, through the server too
            here = through_here = None
            through_here = cli("query", *args, "-c", "pics", "--store", env["store"], "-k", "3", "--json")
            assert through_here.returncode == 0, through_here.stderr
            assert "searching through `dmwan serve`" in through_here.stderr
            here = json.loads(through_here.stdout)
            assert len(here["queries"][0]["results"]) == 3
            if args[0] == "--photo":
                assert here["queries"][0]["results"][0]["path"] == str(photo)
            else:
                assert str(photo) not in [r["path"] for r in here["queries"][0]["results"]]

        info = cli("info", "--store", env["store"])
        assert f"server   `dmwan serve` at {server.url} (pid {server.proc.pid}) holds the store" in info.stdout

        listed = cli("collections", "list", "--store", env["store"])
        assert listed.returncode == 0 and listed.stdout.split()[:2] == ["pics", "10"]

        bad = cli("query", env["root"] / "missing.png", "-c", "pics", "--store", env["store"])
        assert bad.returncode == 3 and "missing.png: no such file" in one_line_error(bad.stderr)
        unknown = cli("query", sketches[0], "-c", "other", "--store", env["store"])
        assert unknown.returncode == 8 and "not served here" in one_line_error(unknown.stderr)

        # Other writers cannot go through it: the message names the server and its URL.
        optimize = cli("collections", "optimize", "pics", "--store", env["store"])
        line = one_line_error(optimize.stderr)
        assert optimize.returncode == 7 and f"`dmwan serve` (pid {server.proc.pid}) at {server.url}" in line

        second = cli("serve", "-c", "pics", "--store", env["store"], "--port", "0")
        assert second.returncode == 7 and server.url in one_line_error(second.stderr)
    finally:
        code, rest = server.stop(signal.SIGTERM)
    assert code == 0 and "stopped" in rest and "Traceback" not in rest
    assert not (env["store"] / ".server.json").exists()
    # The store is free again, and nothing in it was lost.
    code, out, _ = dmwan(capsys, "query", *sketches, "-c", "pics", "--store", env["store"], "-k", "4", "--json")
    assert code == 0 and same_answer(json.loads(out), json.loads(direct))


def test_api_key_server_and_the_cli(env):
    server = ServeProcess("-c", "pics", "--store", env["store"], env={"DMWAN_API_KEY": "k3y"})
    try:
        assert server.get("/collections").status_code == 401
        assert server.get("/collections", headers={"Authorization": "Bearer k3y"}).status_code == 200
        no_key = cli("query", env["sketches"][0], "-c", "pics", "--store", env["store"], env_vars={"DMWAN_API_KEY": ""})
        assert no_key.returncode == 2 and "requires an API key" in one_line_error(no_key.stderr)
        with_key = cli("query", env["sketches"][0], "-c", "pics", "--store", env["store"], "-k", "2", "--paths",
                       env_vars={"DMWAN_API_KEY": "k3y"})
        assert with_key.returncode == 0 and len(with_key.stdout.split()) == 2
    finally:
        code, _ = server.stop(signal.SIGINT)
    assert code == 0


def test_start_up_errors_are_one_line(env):
    missing = cli("serve", "-c", "nope", "--store", env["store"], "--port", "0")
    assert missing.returncode == 8 and "no collection named 'nope'" in one_line_error(missing.stderr)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        taken = cli("serve", "-c", "pics", "--store", env["store"], "--port", port)
    assert taken.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in one_line_error(taken.stderr)
    no_store = cli("serve", "-c", "pics", "--store", env["root"] / "nowhere", "--port", "0")
    assert no_store.returncode == 6 and "no store at" in one_line_error(no_store.stderr)


def test_ingest_goes_through_a_running_server(tmp_path):
    import httpx

    from serve_helpers import shape

    env = make_collection(tmp_path)
    new = tmp_path / "new" / "square"
    new.mkdir(parents=True)
    shape("square", 21, sketch=False).save(new / "square21.png")
    (new / "notes.png").write_text("not a picture")
    server = ServeProcess("-c", "pics", "--store", env["store"])
    try:
        assert (env["store"] / ".server.json").stat().st_mode & 0o777 == 0o600  # it holds the ingest token
        # A wrong path is said before the server is asked; a model or Ray cannot go through it.
        wrong = cli("ingest", tmp_path / "nowhere", "-c", "pics", "--store", env["store"])
        assert wrong.returncode == 2 and "nowhere: no such file or folder" in one_line_error(wrong.stderr)
        assert "ingesting through" not in wrong.stderr
        other = cli("ingest", tmp_path / "new", "-c", "pics", "--store", env["store"], "-m", env["bundle"])
        assert other.returncode == 2 and "leave out --model" in one_line_error(other.stderr)

        done = cli("ingest", tmp_path / "new", "-c", "pics", "--store", env["store"], "--label-from-folder", "--json")
        assert done.returncode == 11, done.stderr  # the same exit code: some file could not be read
        assert f"ingesting through `dmwan serve` at {server.url}" in done.stderr
        report = json.loads(done.stdout)
        assert (report["added"], report["found"], [f["path"] for f in report["failed"]]) == (1, 2, [str(new / "notes.png")])
        again = cli("ingest", tmp_path / "new" / "square" / "square21.png", "-c", "pics", "--store", env["store"])
        assert again.returncode == 0 and "0 added, 0 updated, 1 unchanged" in again.stdout, again.stderr

        # Searchable at once, through the server.
        found = cli("query", env["sketches"][1], "-c", "pics", "--store", env["store"], "--filter",
                    f"path^={tmp_path / 'new'}", "--paths")
        assert found.returncode == 0 and found.stdout.split() == [str(new / "square21.png")], found.stderr
        listed = cli("collections", "list", "--store", env["store"])
        assert listed.stdout.split()[:2] == ["pics", "11"]

        # Without the address file's token (or an API key) the route refuses.
        bare = httpx.post(f"{server.url}/collections/pics/ingest", json={"paths": [str(new)]}, timeout=30)
        assert bare.status_code == 403 and "token" in bare.json()["error"]
    finally:
        code, rest = server.stop(signal.SIGTERM)
    assert code == 0, rest
    code = cli("collections", "list", "--store", env["store"])
    assert code.returncode == 0 and code.stdout.split()[:2] == ["pics", "11"]  # kept after the server stopped
