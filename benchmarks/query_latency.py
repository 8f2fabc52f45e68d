"""Search latency and recall on real (tiny-model) embeddings, and where `dmwan query` spends time.

Usage::

    python benchmarks/query_latency.py                         # 10k and 100k points
    python benchmarks/query_latency.py --sizes 10000 --queries 100

What it does:

1. Embeds ``--base`` generated photos (shapes on noise, 96x96) and ``--queries`` generated sketches
   with the tiny preset (random weights, seeded): real encoder outputs, global 64-d + 16x32 tokens.
   Larger sizes replicate the base embeddings with Gaussian noise (sigma ``--noise``, then
   re-normalised), because embedding 100k images on a small CPU takes long; the figures say so.
2. Per size and backend, upserts the points and times single searches (k=10), global only and
   with the MaxSim token re-rank (prefetch 100): p50 / p99 in ms. recall@10 compares with exact
   NumPy search: cosine top-10 for global, and top-100 by cosine re-ranked by MaxSim for re-rank.
   Backends: the embedded store exact (fresh segments), the embedded store after ``optimize``
   (HNSW), and qdrant-client's in-memory mode (smallest size only).
3. Times ``dmwan query`` in a fresh process against a 10k collection, split into interpreter
   start-up, imports, store open, model load, sketch embedding and search.
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

DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]  # the `dmwan` console script's entry point


def draw(seed: int, sketch: bool):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    if sketch:
        img = Image.new("RGB", (96, 96), "white")
    else:
        img = Image.fromarray(rng.integers(100, 255, (96, 96, 3), dtype=np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(2):
        x, y = (int(v) for v in rng.integers(20, 76, 2))
        r = int(rng.integers(10, 25))
        box = (x - r, y - r, x + r, y + r)
        kind = rng.integers(0, 3)
        kw = {"outline": "black", "width": 3} if sketch else {"fill": tuple(int(c) for c in rng.integers(0, 255, 3))}
        if kind == 0:
            d.ellipse(box, **kw)
        elif kind == 1:
            d.rectangle(box, **kw)
        else:
            d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], **kw)
    return img


def embed(model, n: int, sketch: bool, seed0: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    tf = model.transform("sketch" if sketch else "photo")
    gs, ts = [], []
    for start in range(0, n, 256):
        batch = torch.stack([tf(draw(seed0 + i, sketch)) for i in range(start, min(n, start + 256))])
        e = model.embed_sketches(batch) if sketch else model.embed_photos(batch)
        gs.append(e.global_.numpy())
        ts.append(e.tokens.numpy())
    return np.concatenate(gs), np.concatenate(ts)


JITTER_RUN = 4096
"""Rows that share one noise draw in `jittered`."""


def grow(g: np.ndarray, t: np.ndarray, n: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points: the base ones, then noisy copies of them (re-normalised)."""
    if n <= len(g):
        return g[:n], t[:n]
    return jittered(g, t, 0, n, noise, seed)


def jittered(
    g: np.ndarray, t: np.ndarray, start: int, stop: int, noise: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Points ``start:stop`` of the endless sequence: the base points, then noisy copies of them
    (Gaussian, sigma ``noise``, re-normalised), copy ``c`` of base point ``j`` at ``c * len(g) + j``.
    The same rows come out whatever the slicing (noise is drawn per run of `JITTER_RUN` rows),
    so a large collection can be made, and its rows made again, a slice at a time in flat memory."""
    gs, ts = [], []
    for run in range(start // JITTER_RUN, (stop - 1) // JITTER_RUN + 1):
        rows = np.arange(max(start, run * JITTER_RUN), min(stop, (run + 1) * JITTER_RUN))
        gg, tt = g[rows % len(g)], t[rows % len(g)]
        copy = rows >= len(g)
        if copy.any():
            rng = np.random.default_rng([seed, run])
            full = (JITTER_RUN, *t.shape[1:])
            at = rows - run * JITTER_RUN
            gg = gg + copy[:, None] * rng.normal(0, noise, (JITTER_RUN, g.shape[1])).astype(np.float32)[at]
            tt = tt + copy[:, None, None] * rng.normal(0, noise, full).astype(np.float32)[at]
            gg[copy] /= np.linalg.norm(gg[copy], axis=-1, keepdims=True)
            tt[copy] /= np.linalg.norm(tt[copy], axis=-1, keepdims=True)
        gs.append(gg.astype(np.float32))
        ts.append(tt.astype(np.float32))
    return np.concatenate(gs), np.concatenate(ts)


def exact(g, t, qg, qt, k=10, prefetch=100) -> tuple[list[set], list[set]]:
    """Exact top-k by cosine, and exact top-k of the re-rank (top-prefetch by cosine, then MaxSim)."""
    sims = qg @ g.T
    top_global, top_rerank = [], []
    for i in range(len(qg)):
        cand = np.argpartition(-sims[i], prefetch)[:prefetch]
        top_global.append(set(cand[np.argsort(-sims[i, cand])][:k].tolist()))
        maxsim = np.einsum("qd,ntd->nqt", qt[i], t[cand]).max(axis=2).sum(axis=1)
        top_rerank.append(set(cand[np.argsort(-maxsim)][:k].tolist()))
    return top_global, top_rerank


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"{1000 * np.median(xs):.2f} / {1000 * xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]:.2f}"


def measure(store, name, qg, qt, truth, k=10) -> dict:
    out = {}
    for mode, toks in (("global", None), ("rerank", qt)):
        lat, hits = [], []
        for i in range(3):  # warm-up
            store.search(name, qg[i], k, rerank_tokens=None if toks is None else toks[i])
        for i in range(len(qg)):
            t0 = time.perf_counter()
            res = store.search(name, qg[i], k, rerank_tokens=None if toks is None else toks[i], prefetch=100)
            lat.append(time.perf_counter() - t0)
            hits.append({int(uuid.UUID(h.id).int) - 1 for h in res})
        ref = truth[0] if mode == "global" else truth[1]
        recall = np.mean([len(h & r) / k for h, r in zip(hits, ref)])
        out[mode] = (ms(lat), recall)
    return out


def fill(store, name, g, t) -> float:
    from dmwan_qdrant.store import CollectionSpec, PhotoPoint

    store.create_collection(name, CollectionSpec(g.shape[1], t.shape[2], {"preset": "tiny"}))
    t0 = time.perf_counter()
    for s in range(0, len(g), 2048):
        store.upsert(name, [PhotoPoint(str(uuid.UUID(int=i + 1)), g[i], t[i], {"path": f"/p/{i}.jpg"})
                            for i in range(s, min(len(g), s + 2048))])
    store.flush()
    return len(g) / (time.perf_counter() - t0)


def cli_split(work: Path, model, g, t, sketch: Path) -> dict:
    """Time `dmwan query` in fresh processes: the real command, and the same steps instrumented."""
    from dmwan_qdrant.encoder import load_bundle, model_record
    from dmwan_qdrant.model import save_model
    from dmwan_qdrant.store import CollectionSpec, PhotoPoint, open_store

    bundle = save_model(model, work / "bundle")
    rec = model_record(load_bundle(bundle, "cpu"))
    with open_store(path=work / "cli-store") as st:
        if not st.collection_exists("bench"):
            st.create_collection("bench", CollectionSpec(g.shape[1], t.shape[2], rec))
            for s in range(0, len(g), 2048):
                st.upsert("bench", [PhotoPoint(str(uuid.UUID(int=i + 1)), g[i], t[i], {"path": f"/p/{i}.jpg"})
                                    for i in range(s, min(len(g), s + 2048))])
    args = ["query", str(sketch), "-c", "bench", "--store", str(work / "cli-store"), "-k", "10"]
    probe = f"""
import time, json; t0 = time.perf_counter()
import dmwan_qdrant.cli.query, dmwan_qdrant.cli.collections
from dmwan_qdrant.encoder import load_collection_model
from dmwan_qdrant.search import embed_sketch_files
from dmwan_qdrant.store import open_store
import torch, typer
t1 = time.perf_counter()
st = open_store(path={str(work / 'cli-store')!r}); st.count("bench"); t2 = time.perf_counter()
m = load_collection_model(st, "bench"); t3 = time.perf_counter()
g, tk = embed_sketch_files(m, [{str(sketch)!r}]); t4 = time.perf_counter()
st.search("bench", g[0].numpy(), 10, rerank_tokens=tk[0].numpy()); t5 = time.perf_counter()
st.close()
print(json.dumps(dict(imports=t1-t0, open_store=t2-t1, model_load=t3-t2, embed=t4-t3, search=t5-t4)))
"""
    runs = []
    for _ in range(3):
        w0 = time.perf_counter()
        subprocess.run([*DMWAN, *args], check=True, capture_output=True)
        cli_wall = time.perf_counter() - w0
        w0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - w0
        phases = json.loads(out.strip().splitlines()[-1])
        phases["interpreter_and_exit"] = wall - sum(phases.values())
        phases["probe_total"] = wall
        phases["dmwan_query_total"] = cli_wall
        runs.append(phases)
    return {key: float(np.median([r[key] for r in runs])) for key in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--base", type=int, default=10_000, help="photos really embedded")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-bench-query")
    args = ap.parse_args()

    import torch

    from dmwan_qdrant.model import create_model
    from dmwan_qdrant.store import open_store

    args.workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_model("tiny", seed=0).eval()
    t0 = time.perf_counter()
    base_g, base_t = embed(model, min(args.base, max(args.sizes)), sketch=False, seed0=0)
    qg, qt = embed(model, args.queries, sketch=True, seed0=10**6)
    print(f"embedded {len(base_g)} photos + {len(qg)} sketches in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    print("| points | backend | upsert pts/s | optimize s | global p50 / p99 ms | recall@10 | "
          "re-rank p50 / p99 ms | recall@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        g, t = grow(base_g, base_t, n, args.noise)
        truth = exact(g, t, qg, qt)
        note = "" if n <= len(base_g) else f" ({len(base_g)} real + noisy copies)"
        backends = ["edge", "memory"] if n == min(args.sizes) else ["edge"]
        for backend in backends:
            with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
                store = open_store(memory=True) if backend == "memory" else open_store(path=tmp)
                with store:
                    rate = fill(store, "b", g, t)
                    r = measure(store, "b", qg, qt, truth)
                    label = "memory (qdrant-client)" if backend == "memory" else "edge, exact"
                    print(f"| {n}{note} | {label} | {rate:.0f} | - | {r['global'][0]} | {r['global'][1]:.3f} | "
                          f"{r['rerank'][0]} | {r['rerank'][1]:.3f} |", flush=True)
                    if backend == "edge":
                        t1 = time.perf_counter()
                        store.optimize("b")
                        opt = time.perf_counter() - t1
                        state = store.collection_info("b").index_state
                        r = measure(store, "b", qg, qt, truth)
                        print(f"| {n}{note} | edge, optimized ({state}) | - | {opt:.1f} | {r['global'][0]} | "
                              f"{r['global'][1]:.3f} | {r['rerank'][0]} | {r['rerank'][1]:.3f} |", flush=True)

    sketch = args.workdir / "sketch.png"
    draw(42, sketch=True).save(sketch)
    g, t = grow(base_g, base_t, min(args.sizes), args.noise)
    split = cli_split(args.workdir, model, g, t, sketch)
    print(f"\n`dmwan query` against {len(g)} points (median of 3 fresh processes, seconds):")
    for key, value in split.items():
        print(f"  {key:<22}{value:7.3f}")


if __name__ == "__main__":
    main()
