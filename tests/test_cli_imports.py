"""What a fresh `dmwan` process imports: its start-up is most of what a user waits for.

`dmwan --help` (and every command's) must not import torch or numpy; `dmwan query` imports torch and the
model's code, never Ray, the trainer, the server or the evaluation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import numpy as np
from PIL import Image

NEVER_FOR_A_QUERY = ("ray", "dmwan_qdrant.training", "dmwan_qdrant.server", "dmwan_qdrant.eval",
                     "dmwan_qdrant.data", "fastapi", "uvicorn", "matplotlib", "sklearn")


def fresh_modules(script: str) -> tuple[str, list[str]]:
    """Run ``script`` in a fresh interpreter; its stdout before the module list, and the names
    of the modules loaded when it exited (printed by an exit handler)."""
    prelude = "import atexit, json, sys\natexit.register(lambda: print('\\nMODULES', json.dumps(sorted(sys.modules))))\n"
    proc = subprocess.run([sys.executable, "-c", prelude + script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out, _, modules = proc.stdout.rpartition("\nMODULES ")
    return out, json.loads(modules)


def loaded(modules: list[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_help_of_every_command_imports_no_torch():
    out, modules = fresh_modules(
        "import contextlib, io, typer\n"
        "from dmwan_qdrant.cli import app\n"
        "app._register_commands()\n"
        "root = typer.main.get_command(app.app)\n"
        "paths = [[]] + [[n] for n in root.commands]\n"
        "paths += [[n, s] for n, c in root.commands.items() for s in getattr(c, 'commands', {})]\n"
        "for p in paths:\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as text:\n"
        "        try:\n"
        "            app.main([*p, '--help'])\n"
        "        except SystemExit as e:\n"
        "            assert e.code in (0, None), (p, e.code)\n"
        "    assert 'Usage: dmwan' in text.getvalue(), p\n"
        "print(len(paths))\n"
    )
    assert int(out) > 10  # the commands and the subcommands of `collections` and `model`
    assert [m for m in ("torch", "torchvision", "ray", "numpy") if loaded(modules, m)] == []


def test_collections_create_help_shows_the_librarys_index_defaults():
    # Read from store.index, which loads nothing else of the store (see the test above).
    from dataclasses import asdict

    from dmwan_qdrant.cli.collections import INDEX_DEFAULTS, TOKEN_CHOICES
    from dmwan_qdrant.store.index import TOKEN_STORAGE, IndexSettings

    assert INDEX_DEFAULTS == asdict(IndexSettings())
    assert TOKEN_CHOICES == TOKEN_STORAGE


def test_query_imports_no_ray_training_or_server(tmp_path):
    from dmwan_qdrant.encoder import load_bundle, model_record
    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.store import CollectionSpec, PhotoPoint, open_store

    record = model_record(load_bundle(save_model(create_model("tiny", seed=0), tmp_path / "bundle"), "cpu"))
    rng = np.random.default_rng(0)
    with open_store(path=tmp_path / "store") as st:
        st.create_collection("pics", CollectionSpec(record["dim"], record["token_dim"], record))
        st.upsert("pics", [PhotoPoint(str(uuid.UUID(int=i + 1)), rng.normal(size=record["dim"]).astype(np.float32),
                                      rng.normal(size=(4, record["token_dim"])).astype(np.float32),
                                      {"path": f"/p/{i}.jpg"}) for i in range(5)])
    Image.new("RGB", (40, 30), "white").save(tmp_path / "sketch.png")
    argv = ["dmwan", "query", str(tmp_path / "sketch.png"), "-c", "pics", "--store", str(tmp_path / "store"),
            "-k", "3", "--json"]
    # As the console script runs it (no argv): a query that ends well exits without the
    # interpreter's teardown, and still prints everything and runs the exit handlers.
    out, modules = fresh_modules(f"sys.argv = {argv!r}\nfrom dmwan_qdrant.cli.app import main\nmain()\n")
    assert [r["rank"] for r in json.loads(out)["queries"][0]["results"]] == [1, 2, 3]
    assert loaded(modules, "torch") and loaded(modules, "dmwan_qdrant.model")
    assert [m for m in NEVER_FOR_A_QUERY if loaded(modules, m)] == []
