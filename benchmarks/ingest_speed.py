"""Ingest throughput against the encoder's own forward throughput, and peak memory.

Usage::

    python benchmarks/ingest_speed.py                          # tiny at 2k and 20k, vit_b16 at 64
    python benchmarks/ingest_speed.py --sizes 2000 --vit-images 0 --workers 3
    python benchmarks/ingest_speed.py --workdir /data/bench    # keep the generated folders

Generated JPEG folders (320x240 photos of shapes on textured backgrounds) are written once under
``--workdir``. Each case runs in its own process, so that peak RSS is that case's alone:

- ``ingest img/s``: end to end (walk, hash, decode, preprocess, embed, upsert, flush) into a fresh
  embedded store, with the default loader workers;
- ``forward img/s``: the encoder alone (``embed_photos``) on the same batches, preprocessed in
  advance, at the thread count the ingest gave it (cores minus workers) and at all cores;
- ``peak RSS``: the main process (measured right after the ingest) and the largest loader worker.

Models have random weights (``create_model(preset)``), which cost the same to run as trained ones.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _photo(args: tuple[Path, int]) -> None:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    path, seed = args
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (3,))
    noise = rng.normal(0, 40, (240, 320, 3)) + base
    img = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    d = ImageDraw.Draw(img)
    for _ in range(3):
        x, y, r = int(rng.integers(40, 280)), int(rng.integers(40, 200)), int(rng.integers(15, 60))
        color = tuple(int(c) for c in rng.integers(0, 255, (3,)))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x - r, y - r, x + r, y + r), fill=color)
    img.save(path, quality=90)


def make_folder(root: Path, n: int) -> Path:
    """``n`` JPEGs under ``root/n<n>/<class>/``, generated once (a marker file records it)."""
    folder = root / f"n{n}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    jobs = []
    for i in range(n):
        sub = folder / f"class{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        jobs.append((sub / f"{i:06d}.jpg", i))
    t0 = time.perf_counter()
    with Pool(os.cpu_count()) as pool:
        pool.map(_photo, jobs, chunksize=64)
    marker.write_text(str(n))
    print(f"  generated {n} JPEGs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return folder


def child(case: dict) -> dict:
    """One measurement, in a fresh process; returns the figures."""
    import torch
    from torch.utils.data import DataLoader

    from dmwan_qdrant.encoder import encoder_threads, usable_cores
    from dmwan_qdrant.ingest import _collate, _PhotoFiles, default_workers, ingest, walk_images
    from dmwan_qdrant.model import create_model
    from dmwan_qdrant.store import open_store

    model = create_model(case["preset"], seed=0).eval()
    workers = default_workers() if case["workers"] is None else case["workers"]
    with tempfile.TemporaryDirectory() as tmp, open_store(path=Path(tmp) / "store") as store:
        report = ingest([case["folder"]], store, "bench", model, batch_size=case["batch_size"], num_workers=workers)
        rss_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        points = store.count("bench")

    # The same first batches, decoded and preprocessed in advance: the encoder alone.
    files = [(str(p), 0, 0) for p in walk_images([case["folder"]])][: case["forward_batches"] * case["batch_size"]]
    loader = DataLoader(_PhotoFiles(files, model.transform("photo"), 10**9), batch_size=case["batch_size"],
                        collate_fn=_collate)
    batches = [t for t, _ in loader]
    n = sum(len(b) for b in batches)

    def forward_rate() -> float:
        model.embed_photos(batches[0][:2])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            model.embed_photos(b)
        return n / (time.perf_counter() - t0)

    with encoder_threads(model, leave=workers):
        ingest_threads = torch.get_num_threads()
        fwd_ingest_threads = forward_rate()
    torch.set_num_threads(usable_cores())
    fwd_all = forward_rate()
    return {
        **case,
        "workers": workers,
        "points": points,
        "ingest_img_s": report.images_per_second,
        "seconds": report.seconds,
        "forward_img_s": fwd_ingest_threads,
        "forward_threads": ingest_threads,
        "forward_all_cores_img_s": fwd_all,
        "cores": usable_cores(),
        "rss_main_mb": rss_main,
        "rss_worker_mb": rss_worker,
    }


def run_case(case: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(case)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="tiny-model folder sizes")
    ap.add_argument("--vit-images", type=int, default=64, help="vit_b16 folder size (0 skips it)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--vit-batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: the library's)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-bench-ingest")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    cases = [
        {"preset": "tiny", "n": n, "batch_size": args.batch_size, "forward_batches": 8} for n in args.sizes
    ]
    if args.vit_images:
        cases.append({"preset": "vit_b16", "n": args.vit_images, "batch_size": args.vit_batch_size,
                      "forward_batches": 2})
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    for case in cases:
        case = {**case, "folder": str(make_folder(args.workdir, case["n"])), "workers": args.workers}
        print(f"  running {case['preset']} on {case['n']} images ...", file=sys.stderr)
        rows.append(run_case(case))
    print("| preset | images | batch | workers | ingest img/s | forward img/s (threads) | forward img/s (all cores) "
          "| ingest/forward | seconds | peak RSS main / worker (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['preset']} | {r['n']} | {r['batch_size']} | {r['workers']} | {r['ingest_img_s']:.1f} | "
            f"{r['forward_img_s']:.1f} ({r['forward_threads']}) | {r['forward_all_cores_img_s']:.1f} "
            f"({r['cores']}) | {r['ingest_img_s'] / r['forward_img_s']:.2f} | {r['seconds']:.1f} | "
            f"{r['rss_main_mb']:.0f} / {r['rss_worker_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
