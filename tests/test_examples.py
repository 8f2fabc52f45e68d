"""The examples in `examples/` and the README's qdrant-client section, run as a user runs them:
each finds the top hit `dmwan query` finds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("fastembed")

from cli_helpers import dmwan  # noqa: E402
from serve_helpers import SHAPES, shape  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """JPEG photos in label folders and a sketch of each shape."""
    root = tmp_path_factory.mktemp("examples")
    for kind in SHAPES:
        (root / "photos" / kind).mkdir(parents=True)
        for i in range(8):
            shape(kind, i, sketch=False).resize((96, 96)).save(root / "photos" / kind / f"{kind}{i}.jpg", quality=92)
        shape(kind, 50, sketch=True).resize((96, 96)).save(root / f"{kind}.png")
    return root


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _top_paths(out: str) -> list[str]:
    return re.findall(r"^\s*\d+\s+-?\d\.\d{4}\s+(\S+)$", out, re.M)


def _dmwan_top(capsys, world: Path, tmp_path: Path, sketch: Path, *extra: str) -> str:
    store = tmp_path / "store"
    code, _, err = dmwan(capsys, "ingest", world / "photos", "--collection", "shoes", "--store", store)
    assert code == 0, err
    code, out, err = dmwan(capsys, "query", sketch, "--store", store, "--json", *extra)
    assert code == 0, err
    return json.loads(out)["queries"][0]["results"][0]["path"]


def test_upsert_and_query_in_memory_with_the_shipped_model(world, tmp_path, capsys):
    out = _run(EXAMPLES / "upsert_and_query.py", world / "photos", world / "circle.png", cwd=tmp_path)
    assert f"{2 * 8} photos in 'shoes'" in out
    plain, fused = out.split("re-ranked by local tokens:")
    assert _top_paths(plain)[0] == _dmwan_top(capsys, world, tmp_path, world / "circle.png", "--no-rerank")
    assert _top_paths(fused)[0] == _dmwan_top(capsys, world, tmp_path, world / "circle.png", "--rerank")


def test_search_by_sketch_on_a_local_folder(world, tmp_path, capsys):
    """upsert_and_query.py fills a local-mode folder; search_by_sketch.py finds the model from the
    collection's record and answers with the same top hit as `dmwan query`."""
    _run(EXAMPLES / "upsert_and_query.py", world / "photos", world / "square.png", "--path", tmp_path / "local",
         cwd=tmp_path)
    out = _run(EXAMPLES / "search_by_sketch.py", world / "square.png", "--path", tmp_path / "local", cwd=tmp_path)
    assert len(_top_paths(out)) == 10
    assert _top_paths(out)[0] == _dmwan_top(capsys, world, tmp_path, world / "square.png", "--no-rerank")


def test_readme_snippet_against_a_server_filled_by_dmwan(world, tmp_path, capsys):
    """The README's "From qdrant-client" code, as written but for the server's address, after
    the `dmwan ingest --url` it follows."""
    from qdrant_stub import QdrantStub

    text = (ROOT / "README.md").read_text()
    section = re.search(r"^### From qdrant-client\n(.*?)(?=^### |^## |\Z)", text, re.S | re.M).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    with QdrantStub() as stub:
        status, _, err = dmwan(capsys, "ingest", world / "photos", "--collection", "shoes", "--url", stub.url)
        assert status == 0, err
        (tmp_path / "sketch.png").write_bytes((world / "circle.png").read_bytes())
        script = code.replace("http://localhost:6333", stub.url)
        assert script != code, "the README snippet names no server URL"
        with warnings.catch_warnings():
            done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                                  timeout=300)
        assert done.returncode == 0, done.stderr
        status, out, err = dmwan(capsys, "query", tmp_path / "sketch.png", "--url", stub.url, "--json", "--no-rerank")
        assert status == 0, err
        want = json.loads(out)["queries"][0]["results"][0]["path"]
    assert want in done.stdout.splitlines()[0]
