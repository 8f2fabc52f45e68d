"""Ingest throughput against the encoder's own forward throughput, and peak memory.

Usage::

    python benchmarks/ingest_speed.py                          # tiny at 2k and 20k, vit_b16 at 64
    python benchmarks/ingest_speed.py --sizes 2000 --vit-images 0 --workers 3
    python benchmarks/ingest_speed.py --photo-sizes 320x240 1024x768 --draft both
    python benchmarks/ingest_speed.py --workdir /data/bench    # keep the generated folders
    python benchmarks/ingest_speed.py --decode --bundle runs/procedural-tiny/model

Generated JPEG folders (photos of shapes on textured backgrounds, 320x240 unless
``--photo-sizes`` says otherwise; a larger size is the same scene at a finer sampling) are written
once under ``--workdir``. Each case runs in its own process, so that peak RSS is that case's alone:

- ``ingest img/s``: end to end (walk, hash, decode, preprocess, embed, upsert, flush) into a fresh
  embedded store, with the default loader workers;
- ``forward img/s``: the encoder alone (``embed_photos``) on the same batches, preprocessed in
  advance, at the thread count the ingest gave it (cores minus workers) and at all cores;
- ``peak RSS``: the main process (measured right after the ingest) and the largest loader worker.

Models have random weights (``create_model(preset)``), which cost the same to run as trained ones.
``--draft off`` stops the decoder from decoding JPEGs at a reduced scale (`dmwan_qdrant.imageio`'s
``min_side``) in that case's process and its forked loader workers; ``both`` runs each case twice.

``--decode`` measures the decoder alone instead, in this process on one thread, per photo size
and preset: decode + preprocess img/s at full size and drafted at each ``--margins`` (the
drafted short side is at least margin x the model's input size), and how far the drafted
decode's embeddings are from the full decode's (cosine of the global vectors; random weights,
and the ``--bundle``'s trained ones when its preset is measured). ``--photos DIR`` adds a folder
of real photos.
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


def _photo(args: tuple[Path, int, int, int]) -> None:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    path, seed, w, h = args
    sx, sy = w / 320, h / 240
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (3,))
    noise = rng.normal(0, 40, (h, w, 3)) + base
    blur = ImageFilter.GaussianBlur(2 * min(sx, sy))
    img = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).filter(blur)
    d = ImageDraw.Draw(img)
    for _ in range(3):
        x, y, r = int(rng.integers(40, 280) * sx), int(rng.integers(40, 200) * sy), int(rng.integers(15, 60))
        r = int(r * min(sx, sy))
        color = tuple(int(c) for c in rng.integers(0, 255, (3,)))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x - r, y - r, x + r, y + r), fill=color)
    img.save(path, quality=90)


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def make_folder(root: Path, n: int, size: tuple[int, int] = (320, 240)) -> Path:
    """``n`` JPEGs of ``size`` under ``root/n<n>[-WxH]/<class>/``, generated once (a marker file
    records it)."""
    folder = root / (f"n{n}" if size == (320, 240) else f"n{n}-{size[0]}x{size[1]}")
    marker = folder / ".complete"
    if marker.exists():
        return folder
    jobs = []
    for i in range(n):
        sub = folder / f"class{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        jobs.append((sub / f"{i:06d}.jpg", i, *size))
    t0 = time.perf_counter()
    with Pool(os.cpu_count()) as pool:
        pool.map(_photo, jobs, chunksize=max(1, min(64, n // (4 * (os.cpu_count() or 1)))))
    marker.write_text(str(n))
    print(f"  generated {n} {size[0]}x{size[1]} JPEGs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return folder


def child(case: dict) -> dict:
    """One measurement, in a fresh process; returns the figures."""
    import torch
    from torch.utils.data import DataLoader

    from dmwan_qdrant.encoder import encoder_threads, usable_cores
    from dmwan_qdrant.ingest import default_workers, ingest, walk_images
    from dmwan_qdrant.ingest.decode import PhotoFiles as _PhotoFiles, collate as _collate
    from dmwan_qdrant.model import create_model
    from dmwan_qdrant.store import open_store

    if not case.get("draft", True):
        # Set before the loader workers fork, so that they inherit it.
        import dmwan_qdrant.imageio

        dmwan_qdrant.imageio._draft = lambda im, min_side: None
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


def _decode_rates(paths: list[Path], transform, side: int, margins: list[int | None]) -> list[tuple[float, list]]:
    """load_image + transform over ``paths`` at each draft margin (None: full size): the best
    img/s of passes taken in turn, so that a shared machine's drift falls on every margin alike,
    and each margin's tensors."""
    from dmwan_qdrant import imageio

    chosen = imageio.DRAFT_MARGIN
    best, tensors = [0.0] * len(margins), [[] for _ in margins]
    start, rounds = time.perf_counter(), 0
    try:
        while rounds < 3 or time.perf_counter() - start < len(margins):
            for i, margin in enumerate(margins):
                imageio.DRAFT_MARGIN = margin or chosen  # this process only: the margin under test
                t0 = time.perf_counter()
                tensors[i] = [transform(imageio.load_image(p, min_side=margin and side)) for p in paths]
                best[i] = max(best[i], len(paths) / (time.perf_counter() - t0))
            rounds += 1
    finally:
        imageio.DRAFT_MARGIN = chosen
    return list(zip(best, tensors))


def _short_sides(paths: list[Path], side: int | None) -> str:
    from dmwan_qdrant.imageio import load_image

    sides = [min(load_image(p, min_side=side).size) for p in paths]
    return f"{min(sides)}-{max(sides)}"


def decode_agreement(args: argparse.Namespace) -> None:
    """The decoder alone: full against drafted decodes, speed and embedding agreement."""
    import torch

    from dmwan_qdrant import imageio
    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.model import create_model

    torch.set_num_threads(1)
    sets = [(f"{w}x{h}", sorted(make_folder(args.workdir, args.decode_images, (w, h)).rglob("*.jpg")))
            for w, h in map(parse_size, args.decode_sizes)]
    if args.photos:
        real = sorted(p for p in args.photos.rglob("*") if imageio.is_image_path(p))
        sets.append((f"{args.photos.name}/ (real)", real))
    bundle = load_bundle(args.bundle, device="cpu", runtime="torch").eval() if args.bundle else None

    def cosines(models, full, drafted) -> list[str]:
        if all(torch.equal(a, b) for a, b in zip(full, drafted)):
            return ["1 (no draft)"] * len(models)
        out = []
        for m in models:
            a = m.embed_photos(torch.stack(full)).global_
            b = m.embed_photos(torch.stack(drafted)).global_
            cos = torch.nn.functional.cosine_similarity(a, b)
            out.append(f"{float(cos.min()):.4f} / {float(cos.mean()):.4f}")
        return out

    print("| preset | photos | decode | short side decoded | decode+preprocess img/s | x full "
          "| max abs diff of the input | cosine min / mean, random weights"
          + (" | cosine min / mean, trained bundle" if bundle else "") + " |")
    print("|---|---|---|---|---|---|---|---" + ("|---" if bundle else "") + "|")
    for preset in args.decode_presets:
        models = [create_model(preset, seed=0).eval()]
        if bundle is not None and bundle.config.name == preset:
            models.append(bundle)
        transform = models[0].transform("photo")
        side = imageio.photo_input_size(models[0])
        for label, paths in sets:
            (full_rate, full), *drafts = _decode_rates(paths, transform, side, [None, *args.margins])
            print(f"| {preset} | {len(paths)} x {label} | full | {_short_sides(paths, None)} | {full_rate:.0f} "
                  f"| 1.00 | 0 | {' | '.join(['1'] * len(models))} |", flush=True)
            for margin, (rate, drafted) in zip(args.margins, drafts):
                imageio.DRAFT_MARGIN, chosen = margin, imageio.DRAFT_MARGIN
                sides = _short_sides(paths, side)
                imageio.DRAFT_MARGIN = chosen
                diff = max(float((a - b).abs().max()) for a, b in zip(full, drafted))
                print(f"| {preset} | {len(paths)} x {label} | draft, margin {margin} | {sides} | {rate:.0f} "
                      f"| {rate / full_rate:.2f} | {diff:.3f} | {' | '.join(cosines(models, full, drafted))} |",
                      flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="tiny-model folder sizes")
    ap.add_argument("--vit-images", type=int, default=64, help="vit_b16 folder size (0 skips it)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--vit-batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: the library's)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-bench-ingest")
    ap.add_argument("--photo-sizes", nargs="+", default=["320x240"], help="JPEG sizes of the ingest cases, WxH")
    ap.add_argument("--draft", choices=["on", "off", "both"], default="on",
                    help="let the decoder decode JPEGs at a reduced scale (off: always full size)")
    ap.add_argument("--decode", action="store_true", help="measure the decoder alone (full against drafted)")
    ap.add_argument("--decode-sizes", nargs="+", default=["320x240", "1024x768", "3000x2000"])
    ap.add_argument("--decode-images", type=int, default=24, help="generated JPEGs per size for --decode")
    ap.add_argument("--decode-presets", nargs="+", default=["tiny", "vit_b16"])
    ap.add_argument("--margins", type=int, nargs="+", default=[1, 2, 4], help="draft margins for --decode")
    ap.add_argument("--bundle", type=Path, help="--decode: also compare this trained bundle's embeddings")
    ap.add_argument("--photos", type=Path, help="--decode: also a folder of real photos")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    if args.decode:
        decode_agreement(args)
        return

    drafts = {"on": [True], "off": [False], "both": [False, True]}[args.draft]
    cases = []
    for size in map(parse_size, args.photo_sizes):
        for draft in drafts:
            cases += [{"preset": "tiny", "n": n, "size": size, "draft": draft, "batch_size": args.batch_size,
                       "forward_batches": 8} for n in args.sizes]
            if args.vit_images:
                cases.append({"preset": "vit_b16", "n": args.vit_images, "size": size, "draft": draft,
                              "batch_size": args.vit_batch_size, "forward_batches": 2})
    rows = []
    for case in cases:
        case = {**case, "folder": str(make_folder(args.workdir, case["n"], case["size"])), "workers": args.workers}
        print(f"  running {case['preset']} on {case['n']} images ...", file=sys.stderr)
        rows.append(run_case(case))
    print("| preset | images | draft | batch | workers | ingest img/s | forward img/s (threads) "
          "| forward img/s (all cores) | ingest/forward | seconds | peak RSS main / worker (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        w, h = r["size"]
        print(
            f"| {r['preset']} | {r['n']} x {w}x{h} | {'on' if r['draft'] else 'off'} | {r['batch_size']} "
            f"| {r['workers']} | {r['ingest_img_s']:.1f} | "
            f"{r['forward_img_s']:.1f} ({r['forward_threads']}) | {r['forward_all_cores_img_s']:.1f} "
            f"({r['cores']}) | {r['ingest_img_s'] / r['forward_img_s']:.2f} | {r['seconds']:.1f} | "
            f"{r['rss_main_mb']:.0f} / {r['rss_worker_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
