"""Ingest on Ray Data against the single-process ingest, on the same folder and model.

    python benchmarks/ray_ingest.py                      # tiny on 2000 and 8000 photos, vit_b16 on 64
    python benchmarks/ray_ingest.py --sizes 2000 --vit-images 0 --encoders 1 2

Each case runs in a fresh process into a fresh embedded store. The Ray figure counts the whole
call (a local Ray instance started for it, as `dmwan ingest --ray` does) and, apart, the same
pipeline on an already running Ray; "where the time goes" is Ray Data's per-operator wall time
of that pipeline (tasks and actors overlap, so the rows add up to more than the run) and the
driver's writes into the store. Prints a markdown table: images/s, the ratio to the
single-process ingest and the split.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_speed import make_folder, parse_size  # noqa: E402


def child(case: dict) -> dict:
    """One measurement in this (fresh) process."""
    from dmwan_qdrant.ingest import ingest, ray_pipeline
    from dmwan_qdrant.ingest.write import BatchWriter
    from dmwan_qdrant.model import create_model
    from dmwan_qdrant.store import open_store

    model = create_model(case["preset"], seed=0).eval()
    folder = [case["folder"]]
    out: dict = dict(case)
    with tempfile.TemporaryDirectory() as tmp:
        if case["mode"] == "single":
            with open_store(path=Path(tmp) / "store") as st:
                r = ingest(folder, st, "bench", model, batch_size=case["batch_size"])
            out.update(img_s=r.images_per_second, seconds=r.seconds, points=r.added)
            return out

        import ray

        from dmwan_qdrant.ray_runtime import init_ray

        # The whole call, starting (and stopping) its own local Ray like `dmwan ingest --ray`.
        with open_store(path=Path(tmp) / "cold") as st:
            r = ray_pipeline.ingest_ray(folder, st, "bench", model, batch_size=case["batch_size"],
                                        encoders=case["encoders"])
        out.update(img_s=r.images_per_second, seconds=r.seconds, points=r.added)

        # The pipeline alone on a running Ray, with Ray Data's per-operator figures.
        t0 = time.perf_counter()
        init_ray()
        out["ray_start_s"] = time.perf_counter() - t0
        datasets, write_s = [], [0.0]
        build = ray_pipeline._embedded_photos
        write = BatchWriter.write

        def keep(*a, **kw):
            ds = build(*a, **kw)
            datasets.append(ds)
            return ds

        def timed_write(self, items, embed):
            t = time.perf_counter()
            try:
                return write(self, items, embed)
            finally:
                write_s[0] += time.perf_counter() - t

        ray_pipeline._embedded_photos = keep
        BatchWriter.write = timed_write
        with open_store(path=Path(tmp) / "warm") as st:
            r = ray_pipeline.ingest_ray(folder, st, "bench", model, batch_size=case["batch_size"],
                                        encoders=case["encoders"])
        out.update(warm_img_s=r.images_per_second, warm_seconds=r.seconds, write_s=write_s[0],
                   operators=_operator_wall(datasets[0].stats()))
        ray.shutdown()
    return out


def _operator_wall(stats: str) -> dict[str, float]:
    """Ray Data's total wall time per operator, from `Dataset.stats()`'s text."""
    import re

    walls: dict[str, float] = {}
    name = None
    for line in stats.splitlines():
        m = re.match(r"Operator \d+ (.+?):", line.strip())
        if m:
            name = m.group(1)
            continue
        m = re.search(r"Remote wall time: .*?([0-9.]+)(us|ms|s) total", line)
        if m and name and name not in walls:
            walls[name] = float(m.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[m.group(2)]
    return walls


def run_case(case: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(case)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000], help="tiny-model folder sizes")
    ap.add_argument("--vit-images", type=int, default=64, help="vit_b16 folder size (0 skips it)")
    ap.add_argument("--encoders", type=int, nargs="+", default=[1], help="encoder actors of the Ray cases")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--vit-batch-size", type=int, default=16)
    ap.add_argument("--photo-size", default="320x240", help="JPEG size, WxH")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-bench-ingest")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    w, h = parse_size(args.photo_size)
    runs = [("tiny", n, args.batch_size) for n in args.sizes]
    if args.vit_images:
        runs.append(("vit_b16", args.vit_images, args.vit_batch_size))
    rows = []
    for preset, n, batch in runs:
        folder = str(make_folder(args.workdir, n, (w, h)))
        base = {"preset": preset, "n": n, "folder": folder, "batch_size": batch}
        print(f"  {preset} on {n} images: single process ...", file=sys.stderr)
        single = run_case({**base, "mode": "single"})
        for encoders in args.encoders:
            print(f"  {preset} on {n} images: Ray Data, {encoders} encoder(s) ...", file=sys.stderr)
            rows.append((single, run_case({**base, "mode": "ray", "encoders": encoders})))
    print("| preset | images | encoders | single img/s | Ray img/s (ratio) | Ray on a running Ray img/s (ratio) "
          "| Ray start s | where the pipeline's time goes (operator wall s; driver writes s) |")
    print("|---|---|---|---|---|---|---|---|")
    for single, r in rows:
        ops = ", ".join(f"{k} {v:.1f}" for k, v in r["operators"].items())
        print(f"| {r['preset']} | {r['n']} x {args.photo_size} | {r['encoders']} | {single['img_s']:.1f} "
              f"| {r['img_s']:.1f} ({r['img_s'] / single['img_s']:.2f}) "
              f"| {r['warm_img_s']:.1f} ({r['warm_img_s'] / single['img_s']:.2f}) | {r['ray_start_s']:.1f} "
              f"| {ops}; writes {r['write_s']:.1f} |")


if __name__ == "__main__":
    main()
