"""PyTorch against onnxruntime, side by side in one run: cold `dmwan query`, ingest, warm HTTP search.

Usage::

    python benchmarks/runtimes.py                                  # tiny and vit_b16, random weights
    python benchmarks/runtimes.py --presets tiny --photos 400 --int8
    python benchmarks/runtimes.py --quality data/ultimate data/freehand   # int8's cost in mAP
    python benchmarks/runtimes.py --presets vit_b16 --device cuda         # on a GPU
    python benchmarks/runtimes.py --chunks --presets dmwan-sketch efficientnet_lite0 tiny --photos 400

What it does, per preset:

1. Saves the preset with random weights (seeded: timings do not depend on the values) and exports
   it with `dmwan model export` (and ``--quantize int8`` into a search-only copy with ``--int8``).
2. Writes ``--photos`` seeded JPEG photos (320x240) and ``--sketches`` sketches.
3. Ingest: `dmwan ingest --runtime R --json` into a fresh store per runtime; images/s is the
   report's (decode and embed, the store's writes included).
4. Cold query: `dmwan query SKETCH --runtime R` in ``--runs`` fresh processes, on the store the
   torch run filled; the median wall time. Then every sketch in one query per runtime, on both
   stores: the top-5 ids must be the same for every sketch (int8 is reported, not required).
5. Warm search: `dmwan serve --runtime R`, ``--requests`` sequential one-sketch HTTP searches after
   a warm-up; p50 and p90 of the client's wall time.

``--quality DIR...`` takes `benchmarks/icons.py` folders (``--out``, or the demo's
``dmwan-demo/data``) and scores a bundle (``--model``; default the untrained
``efficientnet_lite0``) on their unseen classes with torch, the fp32 graphs and the int8 graphs:
mAP@all as plain AP (the demo prints it as "plain AP"; with one photo per class, as in the icon
sets, it equals the interpolated mAP@all) and P@10, every photo of the unseen classes the gallery,
and embedding images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]


def cli(*args, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*DMWAN, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"dmwan {' '.join(map(str, args[:2]))} failed:\n{r.stderr[-2000:]}")
    return r


def make_images(work: Path, photos: int, sketches: int) -> tuple[Path, list[Path]]:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    folder = work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        img = Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x, y, r = (int(v) for v in rng.integers(20, 200, 3))
            draw.ellipse((x, y, x + r, y + r // 2), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        img.save(folder / f"p{i:05d}.jpg", quality=90)
    paths = []
    for i in range(sketches):
        img = Image.new("RGB", (256, 256), "white")
        x, y = (int(v) for v in rng.integers(20, 120, 2))
        (ImageDraw.Draw(img).ellipse if i % 2 else ImageDraw.Draw(img).rectangle)((x, y, x + 100, y + 80),
                                                                                  outline="black", width=4)
        paths.append(work / f"sketch{i}.png")
        img.save(paths[-1])
    return folder, paths


def make_bundles(work: Path, preset: str, int8: bool) -> dict[str, Path]:
    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.model.shipped import SHIPPED_MODEL, shipped_bundle

    if preset == SHIPPED_MODEL:  # trained, with its graphs: nothing to create or export
        bundles = {"torch": shipped_bundle(), "onnx": shipped_bundle()}
        if int8:
            if not (work / "int8" / "onnx").is_dir():
                cli("model", "export", SHIPPED_MODEL, "-o", work / "int8", "--quantize", "int8")
            bundles["onnx-int8"] = work / "int8"
        return bundles
    bundle = work / "bundle"
    if not bundle.is_dir():
        save_model(create_model(preset, pretrained=None, seed=0), bundle)
    t0 = time.perf_counter()
    cli("model", "export", bundle)
    print(f"  export: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    bundles = {"torch": bundle, "onnx": bundle}
    if int8:
        cli("model", "export", bundle, "-o", work / "int8", "--quantize", "int8")
        bundles["onnx-int8"] = work / "int8"
    return bundles


def runtime_of(name: str) -> str:
    return "torch" if name == "torch" else "onnx"


def ingest(work: Path, photos: Path, bundles: dict[str, Path], device: str | None) -> dict[str, float]:
    out = {}
    for name, bundle in bundles.items():
        store = work / f"store-{name}"
        extra = ["--device", device] if device else []
        r = cli("ingest", photos, "-c", "bench", "-m", bundle, "--store", store, "--runtime", runtime_of(name),
                "--json", *extra)
        out[name] = json.loads(r.stdout)["images_per_second"]
    return out


def encoder_alone(photos: Path, bundles: dict[str, Path], seconds: float = 8.0) -> dict[str, dict[int, float]]:
    """Images/s of each runtime's photo encoder alone on preprocessed batches of 64 (no decoding,
    no store), on one thread and on every core: what `dmwan ingest` is measured against."""
    from PIL import Image

    from dmwan_qdrant.encoder import load_bundle, usable_cores

    out: dict[str, dict[int, float]] = {}
    files = sorted(photos.glob("*.jpg"))[:64]
    for name, bundle in bundles.items():
        out[name] = {}
        for threads in sorted({1, usable_cores()}):
            model = load_bundle(bundle, "cpu", runtime_of(name))
            tf = model.transform("photo")
            batch = np.stack([np.asarray(tf(Image.open(f).convert("RGB"))) for f in files])
            if runtime_of(name) == "torch":
                import torch

                torch.set_num_threads(threads)
                batch = torch.from_numpy(batch)
            else:
                model.threads = threads
            model.embed_photos(batch)  # warm-up (sessions, allocations)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                model.embed_photos(batch)
                n += len(files)
            out[name][threads] = n / (time.perf_counter() - t0)
    return out


def ingest_threads(name: str) -> int:
    """The encoder threads `dmwan ingest` runs ``name``'s runtime on here, beside its decoding
    workers (`dmwan_qdrant.encoder.encoder_threads`): every core for ONNX, the rest for torch."""
    from dmwan_qdrant.encoder import usable_cores
    from dmwan_qdrant.ingest.run import default_workers

    return usable_cores() if runtime_of(name) == "onnx" else max(1, usable_cores() - default_workers())


def cold_queries(work: Path, sketch: Path, bundles: dict[str, Path], runs: int) -> dict[str, float]:
    out = {}
    for name, bundle in bundles.items():
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            cli("query", sketch, "-c", "bench", "-m", bundle, "--store", work / "store-torch", "--runtime",
                runtime_of(name), "-k", 5)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def top5(work: Path, sketches: list[Path], bundles: dict[str, Path]) -> dict[str, dict[str, list[list[str]]]]:
    """Per store, per runtime: each sketch's top-5 ids."""
    out: dict[str, dict[str, list[list[str]]]] = {}
    for store in ("torch", "onnx"):
        out[store] = {}
        for name, bundle in bundles.items():
            r = cli("query", *sketches, "-c", "bench", "-m", bundle, "--store", work / f"store-{store}", "--runtime",
                    runtime_of(name), "-k", 5, "--json", "--no-rerank")
            out[store][name] = [[h["id"] for h in q["results"]] for q in json.loads(r.stdout)["queries"]]
    return out


def warm_search(work: Path, sketch: Path, bundles: dict[str, Path], requests: int,
                device: str | None) -> dict[str, tuple[float, float]]:
    import httpx

    out = {}
    body = sketch.read_bytes()
    for name, bundle in bundles.items():
        extra = ["--device", device] if device else []
        proc = subprocess.Popen([*DMWAN, "serve", "-c", "bench", "-m", str(bundle), "--store", str(work / "store-torch"),
                                 "--runtime", runtime_of(name), "--port", "0", *extra], stderr=subprocess.PIPE, text=True)
        url = None
        for line in proc.stderr:
            m = re.search(r"serving .* at (http://\S+?)/ ", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            proc.kill()
            raise SystemExit(f"dmwan serve ({name}) did not start")
        try:
            with httpx.Client(timeout=60) as client:
                times = []
                for i in range(requests + 5):
                    t0 = time.perf_counter()
                    r = client.post(f"{url}/collections/bench/search", params={"k": 10, "rerank": "false"},
                                    files=[("sketch", ("s.png", body, "image/png"))])
                    r.raise_for_status()
                    if i >= 5:
                        times.append(1000 * (time.perf_counter() - t0))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        out[name] = (float(np.percentile(times, 50)), float(np.percentile(times, 90)))
    return out


def retrieval(sketches: np.ndarray, s_labels: np.ndarray, photos: np.ndarray, p_labels: np.ndarray) -> dict[str, float]:
    """mAP@all and P@10 of cosine retrieval."""
    order = np.argsort(-(sketches @ photos.T), axis=1, kind="stable")
    relevant = p_labels[order] == s_labels[:, None]
    ranks = np.arange(1, relevant.shape[1] + 1)
    precision = np.cumsum(relevant, axis=1) / ranks
    ap = (precision * relevant).sum(1) / np.maximum(relevant.sum(1), 1)
    return {"mAP@all": float(ap.mean()), "P@10": float(relevant[:, :10].mean())}


def quality(folder: Path, model_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """A bundle (default: the untrained efficientnet_lite0) on ``folder``'s unseen classes, three
    ways: torch, the fp32 graphs and the int8 graphs."""
    from PIL import Image

    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.runtime import as_array

    bundle = model_dir or folder / "zero-shot-efficientnet_lite0"
    if not bundle.is_dir():
        cli("model", "create", "--preset", "efficientnet_lite0", "-o", bundle)
    tag = "" if model_dir is None else f"-{model_dir.parent.name}-{model_dir.name}"
    graphs = {name: folder / f"{name}{tag}" for name in ("onnx-fp32", "onnx-int8")}
    for name, extra in (("onnx-fp32", []), ("onnx-int8", ["--quantize", "int8"])):
        if not (graphs[name] / "onnx").is_dir():
            cli("model", "export", bundle, "-o", graphs[name], *extra)
    unseen = (folder / "zeroshot" / "unseen_classes.txt").read_text().split()
    files = {d: [(c, p) for c in unseen for p in sorted((folder / d / c).glob("*.png"))] for d in ("sketch", "photo")}
    out = {}
    for name, ref, runtime in (("torch", bundle, "torch"), ("onnx-fp32", graphs["onnx-fp32"], "onnx"),
                               ("onnx-int8", graphs["onnx-int8"], "onnx")):
        model = load_bundle(ref, "cpu", runtime)
        emb = {}
        t0 = time.perf_counter()
        for domain, items in files.items():
            embed = model.embed_sketches if domain == "sketch" else model.embed_photos
            parts = [as_array(embed([Image.open(p).convert("RGB") for _, p in items[i:i + 32]]).global_)
                     for i in range(0, len(items), 32)]
            emb[domain] = np.concatenate(parts)
        seconds = time.perf_counter() - t0
        labels = {d: np.array([c for c, _ in items]) for d, items in files.items()}
        out[name] = {**retrieval(emb["sketch"], labels["sketch"], emb["photo"], labels["photo"]),
                     "images_per_s": sum(map(len, files.values())) / seconds}
    return out


def chunk_ab(work: Path, photos: Path, bundle: Path, runtime: str,
             rounds: int = 2) -> dict[str, dict[str, list[float]]]:
    """The encoders' CPU chunks (`dmwan_qdrant.model.imageprep.CPU_CHUNK_PIXELS`) against one
    forward pass per batch, alternating in this process, for ``runtime``: images/s of the encoder
    alone (`encoder_alone`, on the threads the ingest gives it) and of a whole ingest (the
    library's, into a fresh embedded store)."""
    import shutil

    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.ingest import ingest as run_ingest
    from dmwan_qdrant.model import imageprep
    from dmwan_qdrant.store import open_store

    chunked = imageprep.CPU_CHUNK_PIXELS
    out: dict[str, dict[str, list[float]]] = {"chunked": {"encoder": [], "ingest": []},
                                              "one pass": {"encoder": [], "ingest": []}}
    for _ in range(rounds):
        for name, pixels in (("one pass", 10**12), ("chunked", chunked)):
            imageprep.CPU_CHUNK_PIXELS = pixels
            alone = encoder_alone(photos, {runtime: bundle}, seconds=6.0)[runtime]
            out[name]["encoder"].append(alone[ingest_threads(runtime)])
            shutil.rmtree(work / "store-chunks", ignore_errors=True)
            with open_store(path=work / "store-chunks") as store:
                report = run_ingest([photos], store, "bench", load_bundle(bundle, "cpu", runtime))
            out[name]["ingest"].append(report.to_dict()["images_per_second"])
    imageprep.CPU_CHUNK_PIXELS = chunked
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "vit_b16"])
    p.add_argument("--photos", type=int, default=200)
    p.add_argument("--sketches", type=int, default=8)
    p.add_argument("--runs", type=int, default=3, help="fresh processes per cold query")
    p.add_argument("--requests", type=int, default=40, help="HTTP searches per server")
    p.add_argument("--int8", action="store_true", help="also the int8 graphs")
    p.add_argument("--device", default=None, help="cuda to compare onnxruntime's CUDA provider with torch on a GPU")
    p.add_argument("--quality", nargs="*", type=Path, default=[], metavar="DIR",
                   help="benchmarks/icons.py folders (or dmwan-demo/data): int8's cost in mAP (skips the timings)")
    p.add_argument("--model", type=Path, default=None,
                   help="with --quality: the bundle to score (default: the untrained efficientnet_lite0)")
    p.add_argument("--work", type=Path, default=None, help="keep the bundles, photos and stores here")
    p.add_argument("--chunks", action="store_true",
                   help="only the encoders' CPU chunks against one pass per batch (encoder alone and ingest)")
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    if args.quality:
        for folder in args.quality:
            rows = quality(folder, args.model)
            print(f"\n{folder} (unseen classes, {args.model or 'untrained efficientnet_lite0'})")
            print(f"{'encoder':<10} {'mAP@all':>8} {'P@10':>7} {'images/s':>9}")
            for name, r in rows.items():
                print(f"{name:<10} {r['mAP@all']:8.4f} {r['P@10']:7.4f} {r['images_per_s']:9.1f}")
        return

    if args.chunks:
        for preset in args.presets:
            work = (args.work or Path(tempfile.mkdtemp(prefix="runtimes-"))) / preset
            work.mkdir(parents=True, exist_ok=True)
            photos, _ = make_images(work, args.photos, 1)
            bundle = make_bundles(work, preset, False)["onnx"]
            for runtime in ("onnx", "torch"):
                r = chunk_ab(work, photos, bundle, runtime)
                for what in ("encoder", "ingest"):
                    a, b = r["one pass"][what], r["chunked"][what]
                    print(f"{preset} ({runtime}): {what} images/s, one pass {' '.join(f'{v:.1f}' for v in a)}; "
                          f"chunked {' '.join(f'{v:.1f}' for v in b)}; ratio {statistics.mean(b) / statistics.mean(a):.2f}",
                          flush=True)
        return

    for preset in args.presets:
        work = (args.work or Path(tempfile.mkdtemp(prefix="runtimes-"))) / preset
        work.mkdir(parents=True, exist_ok=True)
        weights = "trained" if preset == "dmwan-sketch" else "random weights"
        print(f"\n{preset} ({weights}), {args.photos} photos, in {work}", file=sys.stderr)
        photos, sketches = make_images(work, args.photos, args.sketches)
        bundles = make_bundles(work, preset, args.int8)
        sizes = {n: sum(f.stat().st_size for f in (b / "onnx").glob("*.onnx")) / 1e6 for n, b in bundles.items() if n != "torch"}
        sizes["torch"] = (bundles["torch"] / "model.safetensors").stat().st_size / 1e6
        ips = ingest(work, photos, bundles, args.device)
        alone = encoder_alone(photos, bundles) if args.device is None else {}
        cold = cold_queries(work, sketches[0], bundles, args.runs)
        ids = top5(work, sketches, bundles)
        warm = warm_search(work, sketches[0], bundles, args.requests, args.device)
        print(f"\n{preset}: {args.photos} photos, {args.sketches} sketches, device {args.device or 'cpu'}")
        print(f"{'runtime':<10} {'weights MB':>10} {'ingest img/s':>13} {'cold query s':>13} {'warm p50 ms':>12} {'p90 ms':>8}")
        for name in bundles:
            print(f"{name:<10} {sizes[name]:10.1f} {ips[name]:13.1f} {cold[name]:13.2f} {warm[name][0]:12.1f} "
                  f"{warm[name][1]:8.1f}")
        for name, by_threads in alone.items():
            mine = ingest_threads(name)
            figures = ", ".join(f"{t} thread{'s' if t > 1 else ''} {v:.1f}" for t, v in sorted(by_threads.items()))
            print(f"  encoder alone ({name}): {figures} images/s; ingest / encoder on the {mine} "
                  f"thread{'s' if mine > 1 else ''} ingest gives it: {ips[name] / by_threads[mine]:.2f}")
        base = ids["torch"]["torch"]
        for store in ("torch", "onnx"):
            for name in bundles:
                same = sum(a == b for a, b in zip(ids[store][name], base))
                print(f"  top-5 ids, {name} on the {store}-filled store: {same}/{len(base)} sketches as torch's")
        print(f"  ratios: cold query onnx/torch {cold['onnx'] / cold['torch']:.2f}, "
              f"ingest onnx/torch {ips['onnx'] / ips['torch']:.2f}, warm p50 onnx/torch "
              f"{warm['onnx'][0] / warm['torch'][0]:.2f}")


if __name__ == "__main__":
    main()
