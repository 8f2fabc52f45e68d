"""How long an embedded store takes to open, and what it holds in memory after, by payload index
placement: the keyword indexes of ``label``, ``content_hash`` and ``path`` memory-mapped on disk
(the default since) against held in memory (collections made before).

Usage::

    python benchmarks/store_open.py                      # 100k and 1M points
    python benchmarks/store_open.py --sizes 100000 --opens 5

Per size, once (kept under ``--workdir`` and reused): random unit vectors of the tiny model's
sizes (64-d global, 16x32 tokens, int8 tokens as a new collection has them), ingest-like
payloads (a unique path and content hash per point, one of 100 labels), upserted in batches of
4,096 and optimized. Then for each placement (the indexes dropped and made again in place): the
page cache dropped where this user may (root), and ``--opens`` fresh processes that each open the
store and count the collection (which opens the shard): wall seconds of that, and VmRSS /
RssAnon after; then filtered top-10 searches (p50 over 50 queries) by a label, by three labels,
by an exact path and by a path prefix.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NAME = "c"

CHILD = r'''
import json, re, sys, time
from pathlib import Path
import numpy as np
from dmwan_qdrant.store import EdgeStore
t0 = time.perf_counter()
store = EdgeStore(sys.argv[1])
store.count("c")
opened = time.perf_counter() - t0
status = Path("/proc/self/status").read_text()
mem = {k: int(re.search(rf"^{k}:\s+(\d+)", status, re.M).group(1)) / 1024 for k in ("VmRSS", "RssAnon")}
out = {"open_s": opened, **mem}
if sys.argv[2] == "search":
    q = np.random.default_rng(1).standard_normal((50, 64)).astype(np.float32)
    filters = {"label": {"label": "l5"}, "3 labels": {"label": ["l1", "l2", "l3"]},
               "exact path": {"path": "/photos/12345.jpg"}, "path prefix": {"path": {"prefix": "/photos/1234"}}}
    for name, flt in filters.items():
        store.search("c", q[0], 10, flt)
        times = []
        for v in q:
            t = time.perf_counter(); store.search("c", v, 10, flt); times.append(time.perf_counter() - t)
        out[name] = 1000 * sorted(times)[len(times) // 2]
print(json.dumps(out))
'''


def build(path: Path, n: int) -> None:
    from dmwan_qdrant.store import CollectionSpec, EdgeStore, PhotoPoint

    marker = path / f".built-{n}"
    if marker.is_file():
        return
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    with EdgeStore(path) as st:
        if st.collection_exists(NAME):
            st.delete_collection(NAME)
        st.create_collection(NAME, CollectionSpec(64, 32, {"fingerprint": "bench", "dim": 64, "token_dim": 32}))
        for start in range(0, n, 4096):
            b = min(4096, n - start)
            g = rng.standard_normal((b, 64)).astype(np.float32)
            t = rng.standard_normal((b, 16, 32)).astype(np.float32)
            st.upsert(NAME, [PhotoPoint(str(uuid.UUID(int=start + i + 1)), g[i], t[i],
                                        {"path": f"/photos/{start + i}.jpg", "content_hash": f"{start + i:064x}",
                                         "label": f"l{(start + i) % 100}"}) for i in range(b)])
        st.optimize(NAME)
    marker.write_text("")
    print(f"built {n} points in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def place_indexes(path: Path, on_disk: bool) -> None:
    """Drop and make again the payload indexes of the built collection, on disk or in memory."""
    import qdrant_edge as qe

    from dmwan_qdrant.store.edge_config import field_index_params
    from dmwan_qdrant.store.manifest import SHARD_DIR
    from dmwan_qdrant.store.records import INDEXED_FIELDS

    shard = qe.EdgeShard.load(str(path / NAME / SHARD_DIR))
    for field in INDEXED_FIELDS:
        shard.update(qe.UpdateOperation.delete_field_index(field))
        shard.update(qe.UpdateOperation.create_field_index(
            field, field_index_params() if on_disk else qe.PayloadSchemaType.Keyword))
    shard.flush()
    shard.close()


def drop_page_cache() -> bool:
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def child(path: Path, search: bool) -> dict[str, float]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(path), "search" if search else "open"],
                       capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--opens", type=int, default=3, help="fresh processes per placement")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-bench-open")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        path = args.workdir / f"store-{n}"
        build(path, n)
        for on_disk in (False, True):
            place_indexes(path, on_disk)
            cold = drop_page_cache()
            opens = [child(path, search=False) for _ in range(args.opens)]
            searched = child(path, search=True)
            row = {"points": n, "indexes": "on disk" if on_disk else "in memory", "cold_cache": cold,
                   "open_s": [o["open_s"] for o in opens], "VmRSS": opens[-1]["VmRSS"],
                   "RssAnon": opens[-1]["RssAnon"],
                   **{k: v for k, v in searched.items() if k not in ("open_s", "VmRSS", "RssAnon")}}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print("| points | payload indexes | open s (first after a dropped page cache, then warm) | VmRSS / RssAnon MiB "
          "after open | filtered top-10 p50 ms: label / 3 labels / exact path / path prefix |")
    print("|---|---|---|---|---|")
    for r in rows:
        opens = ", ".join(f"{s:.2f}" for s in r["open_s"])
        print(f"| {r['points']:,} | {r['indexes']} | {opens} (median {statistics.median(r['open_s']):.2f}) | "
              f"{r['VmRSS']:.0f} / {r['RssAnon']:.0f} | {r['label']:.2f} / {r['3 labels']:.2f} / "
              f"{r['exact path']:.2f} / {r['path prefix']:.2f} |")


if __name__ == "__main__":
    main()
