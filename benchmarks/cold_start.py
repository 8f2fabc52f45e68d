"""How long `dmwan query` takes in a fresh process, and `dmwan --help`.

Usage::

    python benchmarks/cold_start.py                  # 10k points, median of 3 fresh processes
    python benchmarks/cold_start.py --points 1000 --runs 5

What it does:

1. Saves the tiny preset (random weights, seeded) as a bundle and fills an embedded store with
   ``--points`` points recorded as that bundle's: random unit vectors, 64-d global + 16x32 tokens.
   A cold start does not depend on the vectors' values (the search itself is ~1 ms at 10k).
2. Times ``dmwan query SKETCH -c bench`` (the real command, the console script's entry point),
   the same through ``main(argv)`` (which exits with the interpreter's teardown) and
   ``dmwan --help``, each in ``--runs`` fresh processes, and the empty interpreter
   (``python -c pass``).
3. Splits a query into phases with the same library calls in a fresh process: the imports of
   the CLI and of the modules the query runs (torch and the model's own code), the store open,
   the model load (which imports the backbone library a preset builds on, if any), the sketch's
   decoding and embedding, the search; interpreter start and exit (without the teardown, as the
   command exits) is the rest of the wall time. It also lists which heavy libraries the real
   command imports, and what the model load imported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]  # what the `dmwan` console script runs
HEAVY = ("torch", "torchvision", "timm", "open_clip", "ray", "dmwan_qdrant.training", "torch._dynamo")

PROBE = """
import time, json, sys; t0 = time.perf_counter()
from dmwan_qdrant.cli import app; app._register_commands()
import torch
from dmwan_qdrant.search.queries import read_query_sources
from dmwan_qdrant.encoder import load_collection_model
from dmwan_qdrant.search import embed_sketch_images, search_sketch_embeddings
from dmwan_qdrant.search.similar import search_like
from dmwan_qdrant.store import open_store
t1 = time.perf_counter()
st = open_store(path=STORE, read_only=True); st.count("bench"); t2 = time.perf_counter()
before = set(sys.modules)
m = load_collection_model(st, "bench"); t3 = time.perf_counter()
loaded = sorted(n for n in set(sys.modules) - before if "." not in n and not n.startswith("_"))
g, tk = embed_sketch_images(m, [s.decode() for s in read_query_sources([SKETCH])]); t4 = time.perf_counter()
search_sketch_embeddings(st, "bench", m, g, tk, k=10, rerank=False); t5 = time.perf_counter()
st.close()
print(json.dumps(dict(imports=t1 - t0, store_open=t2 - t1, model_load=t3 - t2, embed=t4 - t3, search=t5 - t4,
                      model_load_imported=loaded)))
app._exit_fast(0)  # as `dmwan query` ends (see `skip_teardown`)
"""


def make_collection(work: Path, points: int) -> tuple[Path, Path]:
    """A store at ``work/store`` with collection 'bench' of ``points`` points of the tiny bundle,
    and a sketch file; both reused when they are there."""
    from PIL import Image, ImageDraw

    store_dir, sketch = work / "store", work / "sketch.png"
    img = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(img).ellipse((20, 20, 76, 76), outline="black", width=3)
    img.save(sketch)
    from dmwan_qdrant.encoder import load_bundle, model_record
    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.store import CollectionSpec, PhotoPoint, open_store

    bundle = work / "bundle"
    if not bundle.is_dir():
        save_model(create_model("tiny", seed=0), bundle)
    rec = model_record(load_bundle(bundle, "cpu"))
    with open_store(path=store_dir) as st:
        if st.collection_exists("bench") and st.count("bench") == points:
            return store_dir, sketch
        if st.collection_exists("bench"):
            st.delete_collection("bench")
        st.create_collection("bench", CollectionSpec(rec["dim"], rec["token_dim"], rec))
        rng = np.random.default_rng(0)
        for s in range(0, points, 2048):
            n = min(points, s + 2048) - s
            g = rng.normal(size=(n, rec["dim"])).astype(np.float32)
            t = rng.normal(size=(n, rec["num_tokens"], rec["token_dim"])).astype(np.float32)
            g /= np.linalg.norm(g, axis=-1, keepdims=True)
            t /= np.linalg.norm(t, axis=-1, keepdims=True)
            st.upsert("bench", [PhotoPoint(str(uuid.UUID(int=s + i + 1)), g[i], t[i], {"path": f"/p/{s + i}.jpg"})
                                for i in range(n)])
        st.flush()
    return store_dir, sketch


def wall(cmd: list[str], runs: int) -> float:
    """Median wall time of ``cmd`` in ``runs`` fresh processes."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def heavy_imports(argv: list[str]) -> list[str]:
    """Which of `HEAVY` `dmwan ARGV` imports, run as the console script runs it (an exit handler
    reports them: a query ends without the interpreter's teardown, exit handlers still run)."""
    script = ("import atexit, json, runpy, sys\n"
              f"atexit.register(lambda: print('\\nHEAVY', json.dumps([m for m in {HEAVY!r} if m in sys.modules])))\n"
              f"sys.argv = {['dmwan', *argv]!r}\n"
              "runpy.run_module('dmwan_qdrant.cli', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True).stdout
    return json.loads(out.rsplit("\nHEAVY ", 1)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-bench-cold")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    store_dir, sketch = make_collection(args.workdir, args.points)
    query = ["query", str(sketch), "-c", "bench", "--store", str(store_dir), "-k", "10"]

    empty = wall([sys.executable, "-c", "pass"], args.runs)
    help_s = wall([*DMWAN, "--help"], args.runs)
    query_s = wall([*DMWAN, *query], args.runs)
    # The same command from a caller's `main(argv)`: the program then exits with the interpreter's
    # full teardown, as `dmwan query` did before it skipped it.
    torn_down = wall([sys.executable, "-c", f"from dmwan_qdrant.cli.app import main; main({query!r})"], args.runs)
    probe = PROBE.replace("STORE", repr(str(store_dir))).replace("SKETCH", repr(str(sketch)))
    runs = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
        phases = json.loads(out.strip().splitlines()[-1])
        imported = phases.pop("model_load_imported")
        phases["interpreter_start_exit"] = time.perf_counter() - t0 - sum(phases.values())
        runs.append(phases)
    split = {key: float(np.median([r[key] for r in runs])) for key in runs[0]}

    print(f"`dmwan query` against {args.points} points, tiny preset, median of {args.runs} fresh processes:")
    print(f"  {'dmwan query (real)':<24}{query_s:7.3f} s")
    print(f"  {'same, with teardown':<24}{torn_down:7.3f} s")
    print(f"  {'dmwan --help':<24}{help_s:7.3f} s")
    print(f"  {'python -c pass':<24}{empty:7.3f} s")
    print("split (same library calls, instrumented):")
    for key, value in split.items():
        print(f"  {key:<24}{value:7.3f} s")
    print(f"  {'total':<24}{sum(split.values()):7.3f} s")
    print(f"model load imported: {', '.join(imported) or 'nothing new'}")
    print(f"heavy modules `dmwan query` imports: {', '.join(heavy_imports(query)) or 'none'}")
    print(f"heavy modules `dmwan --help` imports: {', '.join(heavy_imports(['--help'])) or 'none'}")


if __name__ == "__main__":
    main()
