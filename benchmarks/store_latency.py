"""Store throughput and latency per backend: upsert, top-k search, top-k with MaxSim re-rank.

Usage::

    python benchmarks/store_latency.py                       # edge and memory, 10k points
    python benchmarks/store_latency.py --n 100000 --backends edge --optimize
    QDRANT_URL=http://host:6333 python benchmarks/store_latency.py --backends server

Random unit vectors (512-d global, 16x128 tokens by default). Latency is per single query, in
ms, p50 / p99 over ``--queries`` queries after a few warm-up ones. With ``--optimize`` the edge
store builds HNSW before searching (exact search otherwise: fine up to ~10k points).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmwan_qdrant.store import CollectionSpec, PhotoPoint, Store  # noqa: E402


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_points(n: int, dim: int, n_tok: int, token_dim: int, seed: int = 0) -> list[PhotoPoint]:
    rng = np.random.default_rng(seed)
    g, t = unit(rng, n, dim), unit(rng, n, n_tok, token_dim)
    return [
        PhotoPoint(
            str(uuid.UUID(int=i + 1)), g[i], t[i], {"label": f"c{i % 50}", "path": f"/p/{i}.jpg"}
        )
        for i in range(n)
    ]


def percentiles(ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return f"{statistics.median(ms):8.2f} / {p99:8.2f}"


def timed_queries(fn, queries: int, warmup: int = 3) -> list[float]:
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(queries):
        t0 = time.perf_counter()
        fn(warmup + i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def open_backend(kind: str, folder: Path) -> Store:
    from dmwan_qdrant.store import EdgeStore, MemoryStore, ServerStore

    if kind == "edge":
        return EdgeStore(folder / "edge")
    if kind == "memory":
        return MemoryStore()
    url = os.environ.get("QDRANT_URL")
    if not url:
        raise SystemExit("--backends server needs QDRANT_URL")
    return ServerStore(url, api_key=os.environ.get("QDRANT_API_KEY"))


def bench(
    kind: str, args: argparse.Namespace, points: list[PhotoPoint], folder: Path
) -> dict[str, str]:
    rng = np.random.default_rng(1)
    nq = args.queries if kind != "memory" else min(args.queries, args.memory_queries)
    qv = unit(rng, nq + 3, args.dim)
    qt = unit(rng, nq + 3, args.n_tok, args.token_dim)
    name = "bench_" + uuid.uuid4().hex[:8]
    row: dict[str, str] = {"backend": kind, "points": str(len(points))}
    with open_backend(kind, folder) as store:
        store.create_collection(
            name, CollectionSpec(args.dim, args.token_dim, {"fingerprint": "bench"})
        )
        t0 = time.perf_counter()
        for s in range(0, len(points), args.batch):
            store.upsert(name, points[s : s + args.batch])
        store.flush()
        row["upsert pts/s"] = f"{len(points) / (time.perf_counter() - t0):,.0f}"
        if args.optimize and kind != "memory":
            t0 = time.perf_counter()
            store.optimize(name)
            row["optimize s"] = f"{time.perf_counter() - t0:.1f}"
        row["top-10 ms p50/p99"] = percentiles(
            timed_queries(lambda i: store.search(name, qv[i], 10), nq)
        )
        row["+filter ms"] = percentiles(
            timed_queries(lambda i: store.search(name, qv[i], 10, filter={"label": "c7"}), nq)
        )
        row["+rerank ms"] = percentiles(
            timed_queries(
                lambda i: store.search(
                    name, qv[i], 10, rerank_tokens=qt[i], prefetch=args.prefetch
                ),
                nq,
            )
        )
        t0 = time.perf_counter()
        store.search_batch(name, qv[:nq], 10, rerank_tokens=list(qt[:nq]), prefetch=args.prefetch)
        row["batch+rerank ms/q"] = f"{(time.perf_counter() - t0) * 1000 / nq:.2f}"
        store.delete_collection(name)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10_000, help="points")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--n-tok", type=int, default=16)
    ap.add_argument("--token-dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=512, help="points per upsert call")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--memory-queries", type=int, default=20, help="cap for the slow memory backend"
    )
    ap.add_argument("--prefetch", type=int, default=100)
    ap.add_argument("--optimize", action="store_true", help="build HNSW before searching")
    ap.add_argument("--backends", default="edge,memory")
    args = ap.parse_args()

    points = make_points(args.n, args.dim, args.n_tok, args.token_dim)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.backends.split(","):
            rows.append(bench(kind.strip(), args, points, Path(tmp)))
            print(f"done: {kind}", file=sys.stderr)
    cols = list(dict.fromkeys(c for r in rows for c in r))
    widths = {c: max(len(c), *(len(r.get(c, "-")) for r in rows)) for c in cols}
    print(" | ".join(c.ljust(widths[c]) for c in cols))
    print("-|-".join("-" * widths[c] for c in cols))
    for r in rows:
        print(" | ".join(r.get(c, "-").ljust(widths[c]) for c in cols))
    print(
        f"\n{args.n} points, {args.dim}-d global, {args.n_tok}x{args.token_dim} tokens, "
        f"prefetch {args.prefetch}, {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
