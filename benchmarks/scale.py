"""Scale: embedded collections of 100k and 1M points from real embeddings, on one machine.

Usage::

    python benchmarks/scale.py --model dmwan-demo/runs/procedural-tiny/model   # 100k and 1M
    python benchmarks/scale.py --model BUNDLE --sizes 100000 --settings 16:100:int8 32:200:float32
    python benchmarks/scale.py --model BUNDLE --sizes 1000000 --efs 64 128 256

What it does:

1. Embeds ``--base`` generated photos and ``--queries`` generated sketches (`query_latency`'s
   helpers) with ``--model``, a trained bundle such as the one `dmwan demo` makes, cached in
   ``--workdir``. Without ``--model`` the tiny preset with random weights is used, whose
   embeddings are nearly all alike (mean cosine 0.999 between photos): fine for timings, not for
   recall or for what quantization costs. Sizes above
   ``--base`` are the real embeddings followed by jittered copies (Gaussian noise, sigma
   ``--noise``, re-normalised), made a slice at a time so that memory stays flat.
2. Per size and setting (``--settings M:EF_CONSTRUCT:TOKENS``, ``TOKENS`` one of the token
   storages, ``int8-norescore`` for int8 scores alone), in a fresh process: creates
   the collection with those `IndexSettings`, upserts in batches of ``--batch`` (RSS and its
   anonymous part at 10k, 100k, 1M points; the peak anonymous memory of the load and of
   `optimize`, sampled every 0.1 s), times exact search (fresh segments, before `optimize`), runs `optimize`
   once at the end, closes, and measures the bytes on disk.
3. In another fresh process: reopens the store (time, RSS), times top-10 HNSW searches at each
   ``--ef`` and the MaxSim re-rank of the top 100 (prefetch 100, at the collection's default ef).
4. Scores them against exact NumPy search: recall@10 of the global top-10, recall@10 of the
   re-rank against the exact float32 re-rank (exact top 100 by cosine, then float MaxSim), and
   the agreement of the engine's re-rank with the float32 re-rank of the same 100 candidates
   (MaxSim alone, and fused with the cosine as `dmwan query --rerank` does): it isolates what
   the token storage changes. P@10 of the two rankings, for any relevance labels, differs by at
   most ``1 - agreement``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from query_latency import embed, jittered, ms  # noqa: E402

NAME = "scale"
DEPTH = 100
"""Candidates of the re-rank, as `dmwan query --rerank` prefetches them."""


def rss_mib() -> dict[str, float]:
    """VmRSS (resident), RssAnon (heap, not file pages) and VmHWM (peak) of this process, MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


class AnonPeak:
    """The peak RssAnon of this process (memory that is not file pages: what the machine must
    really have) over a phase, sampled every ``every_s`` in a thread; VmHWM counts mapped files."""

    def __init__(self, every_s: float = 0.1) -> None:
        import threading

        self.every_s = every_s
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, rss_mib()["RssAnon"])

    def __enter__(self) -> "AnonPeak":
        self.peak = rss_mib()["RssAnon"]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib()["RssAnon"])


def embeddings(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Photo and sketch embeddings of the tiny model, from the cache or embedded now."""
    tag = "random" if args.model is None else Path(args.model).resolve().parent.parent.name
    cache = args.workdir / f"embeddings-{tag}-{args.base}-{args.queries}.npz"
    if not cache.exists():
        import torch

        from dmwan_qdrant.encoder import load_bundle
        from dmwan_qdrant.model import create_model

        torch.manual_seed(0)
        model = create_model("tiny", seed=0).eval() if args.model is None else load_bundle(args.model, "cpu", runtime="torch")
        t0 = time.perf_counter()
        with torch.no_grad():
            g, t = embed(model, args.base, sketch=False, seed0=0)
            qg, qt = embed(model, args.queries, sketch=True, seed0=10**6)
        print(f"embedded {len(g)} photos + {len(qg)} sketches in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        np.savez(cache, g=g, t=t, qg=qg, qt=qt)
    with np.load(cache) as z:
        return {k: z[k] for k in ("g", "t", "qg", "qt")}


def rows(emb: dict[str, np.ndarray], ids: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """The points with these row numbers (made again, a run of rows at a time)."""
    from query_latency import JITTER_RUN

    g = np.empty((len(ids), emb["g"].shape[1]), np.float32)
    t = np.empty((len(ids), *emb["t"].shape[1:]), np.float32)
    runs = ids // JITTER_RUN
    for run in np.unique(runs):
        at = np.flatnonzero(runs == run)
        rg, rt = jittered(emb["g"], emb["t"], run * JITTER_RUN, (run + 1) * JITTER_RUN, noise)
        g[at], t[at] = rg[ids[at] - run * JITTER_RUN], rt[ids[at] - run * JITTER_RUN]
    return g, t


def point_ids(hits: list) -> list[int]:
    return [uuid.UUID(h.id).int - 1 for h in hits]


def timed(fn, n: int, warmup: int = 3) -> tuple[list[float], list[Any]]:
    """Latencies (s) and results of ``fn(i)`` for i < n, after ``warmup`` untimed calls."""
    for i in range(warmup):
        fn(i)
    lat, out = [], []
    for i in range(n):
        t0 = time.perf_counter()
        out.append(fn(i))
        lat.append(time.perf_counter() - t0)
    return lat, out


# -- the two child processes ------------------------------------------------------------------


def build(case: dict[str, Any]) -> dict[str, Any]:
    """Create and fill the collection, time exact search, optimize, close; in a fresh process."""
    from dmwan_qdrant.store import CollectionSpec, EdgeStore, PhotoPoint
    from dmwan_qdrant.store.disk import allocated_bytes
    from dmwan_qdrant.store.index import IndexSettings

    args = case["args"]
    emb = embeddings(args)
    n, qg = case["n"], emb["qg"]
    out: dict[str, Any] = {"rss_at": {}}
    tokens, _, norescore = case["tokens"].partition("-")
    index = IndexSettings(hnsw_m=case["m"], ef_construct=case["ef_construct"], tokens=tokens, rescore=not norescore)
    with EdgeStore(case["path"], batch_size=args.batch) as store:
        store.create_collection(NAME, CollectionSpec(emb["g"].shape[1], emb["t"].shape[2], {"preset": "tiny"}, index))
        out["anon_base"] = rss_mib()["RssAnon"]
        t0 = time.perf_counter()
        with AnonPeak() as load_peak:
            for start in range(0, n, args.batch):
                stop = min(n, start + args.batch)
                g, t = jittered(emb["g"], emb["t"], start, stop, args.noise)
                store.upsert(NAME, [PhotoPoint(str(uuid.UUID(int=i + 1)), g[i - start], t[i - start],
                                               {"path": f"/p/{i}.jpg"}) for i in range(start, stop)])
                for mark in (10_000, 100_000, 1_000_000):
                    if start < mark <= stop:
                        r = rss_mib()
                        out["rss_at"][mark] = (r["VmRSS"], r["RssAnon"])
            store.flush()
        out["build_s"] = time.perf_counter() - t0
        out["anon_peak_load"] = load_peak.peak
        lat, hits = timed(lambda i: store.search(NAME, qg[i], 10), len(qg))
        out["exact"] = {"lat": lat, "ids": [point_ids(h) for h in hits]}
        t0 = time.perf_counter()
        with AnonPeak() as optimize_peak:
            store.optimize(NAME)
        out["optimize_s"] = time.perf_counter() - t0
        out["anon_peak_optimize"] = optimize_peak.peak
        out["info"] = store.collection_info(NAME)
    out["rss_build"] = rss_mib()
    out["disk_bytes"] = allocated_bytes(Path(case["path"]) / NAME)
    return out


def serve(case: dict[str, Any]) -> dict[str, Any]:
    """Reopen the store and time HNSW searches at each ef and the re-rank; in a fresh process."""
    from dmwan_qdrant.store import EdgeStore

    emb = embeddings(case["args"])
    qg, qt = emb["qg"], emb["qt"]
    del emb["g"], emb["t"]  # not needed here: keep them out of the RSS figures
    out: dict[str, Any] = {"rss_before": rss_mib()["VmRSS"], "ef": {}}
    t0 = time.perf_counter()
    with EdgeStore(case["path"]) as store:
        store.count(NAME)  # opens the shard
        out["reopen_s"] = time.perf_counter() - t0
        out["rss_open"] = rss_mib()["VmRSS"]
        for ef in case["args"].efs:
            lat, hits = timed(lambda i: store.search(NAME, qg[i], 10, hnsw_ef=ef), len(qg))
            out["ef"][ef] = {"lat": lat, "ids": [point_ids(h) for h in hits]}
        lat, hits = timed(lambda i: store.search(NAME, qg[i], DEPTH, rerank_tokens=qt[i], prefetch=DEPTH), len(qg))
        out["rerank"] = {"lat": lat, "ids": [point_ids(h) for h in hits], "scores": [[h.score for h in r] for r in hits]}
        out["default_ef"] = store.collection_info(NAME).index.hnsw_ef
        out["rss_queries"] = rss_mib()
    return out


def in_child(fn, case: dict[str, Any]) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
        return ex.submit(fn, case).result()


# -- ground truth and scores ------------------------------------------------------------------


def exact_top(emb: dict[str, np.ndarray], n: int, noise: float, depth: int = DEPTH) -> np.ndarray:
    """Row numbers of the exact top ``depth`` by cosine per query, best first."""
    qg = emb["qg"]
    best_s = np.full((len(qg), 0), -np.inf, np.float32)
    best_i = np.zeros((len(qg), 0), np.int64)
    step = 100_000
    for start in range(0, n, step):
        g, _ = jittered(emb["g"], emb["t"], start, min(n, start + step), noise)
        s = np.concatenate([best_s, qg @ g.T], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(g)), (len(qg), len(g)))], axis=1)
        keep = np.argpartition(-s, depth - 1, axis=1)[:, :depth]
        best_s, best_i = np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_i, order, 1)


def maxsim(qt: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Float32 MaxSim of one query's tokens against points' tokens ``(n, T, d)``."""
    return np.einsum("qd,ntd->nqt", qt, t).max(axis=2).sum(axis=1)


def recall(got: list[list[int]], want: list[list[int]], k: int = 10) -> float:
    return float(np.mean([len(set(g[:k]) & set(w[:k])) / k for g, w in zip(got, want)]))


def rerank_scores(emb: dict[str, np.ndarray], n: int, noise: float, top: np.ndarray, served: dict[str, Any]) -> dict[str, float]:
    """Re-rank recall against the exact float32 re-rank, and the agreement of the engine's
    re-rank with the float32 re-rank of its own candidates (MaxSim alone and fused)."""
    from dmwan_qdrant.search.reranking import RERANK_WEIGHT

    qg, qt = emb["qg"], emb["qt"]
    w, n_tok = RERANK_WEIGHT, qt.shape[1]
    truth, same_ms, same_fused = [], [], []
    for i in range(len(qg)):
        g, t = rows(emb, top[i], noise)
        truth.append(top[i][np.argsort(-maxsim(qt[i], t))][:10].tolist())
        cand = np.array(served["ids"][i])
        g, t = rows(emb, cand, noise)
        engine_ms, float_ms, cos = np.array(served["scores"][i]), maxsim(qt[i], t), g @ qg[i]
        top_float = set(cand[np.argsort(-float_ms)][:10].tolist())
        same_ms.append(len(set(served["ids"][i][:10]) & top_float) / 10)
        fused_e = (cos + w * engine_ms / n_tok) / (1 + w)
        fused_f = (cos + w * float_ms / n_tok) / (1 + w)
        same_fused.append(len(set(cand[np.argsort(-fused_e)][:10].tolist()) & set(cand[np.argsort(-fused_f)][:10].tolist())) / 10)
    return {
        "recall": recall(served["ids"], truth),
        "agree_maxsim": float(np.mean(same_ms)),
        "agree_fused": float(np.mean(same_fused)),
    }


# -- driver -----------------------------------------------------------------------------------


def run_case(args: argparse.Namespace, emb: dict[str, np.ndarray], n: int, m: int, efc: int, tokens: str, top: np.ndarray) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"scale-{n}-", dir=args.workdir))
    case = {"args": args, "n": n, "m": m, "ef_construct": efc, "tokens": tokens, "path": str(folder)}
    try:
        b = in_child(build, case)
        print(f"  built {n} ({m}:{efc}, {tokens}) in {b['build_s']:.0f} s, optimized in {b['optimize_s']:.0f} s", file=sys.stderr)
        s = in_child(serve, case)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    want = [r[:10].tolist() for r in top]
    rr = rerank_scores(emb, n, args.noise, top, s["rerank"])
    rss_at = " / ".join(f"{v:.0f} ({a:.0f})" for v, a in b["rss_at"].values())
    info = b["info"]
    print(f"| {n:,} | {m} / {efc} | {tokens} | {b['build_s']:.0f} ({n / b['build_s']:,.0f} pts/s) | {b['optimize_s']:.0f} | "
          f"{b['disk_bytes'] / n:,.0f} | {rss_at} | {b['rss_build']['VmHWM']:.0f} | "
          f"{b['anon_base']:.0f} / {b['anon_peak_load']:.0f} / {b['anon_peak_optimize']:.0f} | {s['reopen_s']:.2f} | "
          f"{s['rss_open'] - s['rss_before']:.0f} / {s['rss_queries']['VmRSS'] - s['rss_before']:.0f} | "
          f"{info.index_state}, {info.segments} seg |", flush=True)
    lines = [f"| {n:,} | {m} / {efc} | {tokens} | exact (before optimize) | {ms(b['exact']['lat'])} | "
             f"{recall(b['exact']['ids'], want):.3f} |"]
    for ef, r in s["ef"].items():
        mark = " (default)" if ef == s["default_ef"] else ""
        lines.append(f"| {n:,} | {m} / {efc} | {tokens} | HNSW ef={ef}{mark} | {ms(r['lat'])} | {recall(r['ids'], want):.3f} |")
    lines.append(f"| {n:,} | {m} / {efc} | {tokens} | re-rank top {DEPTH} (ef={s['default_ef']}) | {ms(s['rerank']['lat'])} | "
                 f"{rr['recall']:.3f}; agreement with float32: MaxSim {rr['agree_maxsim']:.3f}, fused {rr['agree_fused']:.3f} |")
    SEARCH_ROWS.extend(lines)


SEARCH_ROWS: list[str] = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--model", default=None, metavar="BUNDLE", help="trained bundle (default: random tiny weights)")
    ap.add_argument("--base", type=int, default=50_000, help="photos really embedded")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.05, help="sigma of the jitter of the copies")
    ap.add_argument("--settings", nargs="+", default=None, metavar="M:EF_CONSTRUCT:TOKENS",
                    help="collection settings to build (default: IndexSettings' defaults)")
    ap.add_argument("--efs", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--batch", type=int, default=4096, help="points per upsert")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-bench-scale")
    args = ap.parse_args()

    import os

    from dmwan_qdrant.store.index import IndexSettings

    d = IndexSettings()
    settings = [(int(m), int(efc), tok) for m, efc, tok in (x.split(":") for x in args.settings or [])]
    args.workdir.mkdir(parents=True, exist_ok=True)
    emb = embeddings(args)
    print(f"{len(emb['g'])} real photo embeddings ({emb['g'].shape[1]}-d global, {emb['t'].shape[1]}x{emb['t'].shape[2]} "
          f"tokens), {len(emb['qg'])} sketch queries, copies jittered with sigma {args.noise}; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f} at the start\n")
    print("| points | m / ef_construct | tokens | build s | optimize s | disk B/point | RSS (anon) MiB at 10k / 100k / 1M | "
          "peak RSS MiB | anon MiB: empty store / peak load / peak optimize | reopen s | "
          "RSS MiB after reopen / queries | index |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        top = exact_top(emb, n, args.noise)
        for m, efc, tok in settings or [(d.hnsw_m, d.ef_construct, d.tokens)]:
            run_case(args, emb, n, m, efc, tok, top)
    print("\n| points | m / ef_construct | tokens | search | p50 / p99 ms | recall@10 |")
    print("|---|---|---|---|---|---|")
    print("\n".join(SEARCH_ROWS))
    print(f"\nload {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
