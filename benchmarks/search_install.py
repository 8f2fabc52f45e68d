"""The search-only install, for real: a fresh venv with `pip install '.[search]'`, its size, and
ingest, query and serve run in it with an exported bundle (torch is not there at all).

Usage::

    python benchmarks/search_install.py                     # tiny bundle, 60 photos, 5 cold queries
    python benchmarks/search_install.py --venv /tmp/search-venv --keep

What it does:

1. Creates a venv (``--venv``, default a temporary folder) and installs this checkout with the
   ``search`` extra from PyPI (not editable: what a deployment gets); checks torch is absent.
2. Reports the venv's size on disk (``du``) and the largest packages in it.
3. With the outer environment (which has torch), saves a seeded tiny bundle with a text tower
   and exports it; writes photos and a sketch.
4. In the search-only venv: `dmwan ingest`, `dmwan query` (median of ``--runs`` fresh processes;
   a text query too), and `dmwan serve` answering one HTTP search.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--venv", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the venv")
    p.add_argument("--photos", type=int, default=60)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="search-install-"))
    venv = args.venv or work / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        t0 = time.perf_counter()
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"{ROOT}[search]"], check=True)
        print(f"installed in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "True", "torch is installed in the search-only venv"
    site = next((venv / "lib").glob("python3*/site-packages"))
    sizes = sorted(((du(d), d.name) for d in site.iterdir() if d.is_dir() and not d.name.endswith("-info")),
                   reverse=True)

    sys.path.insert(0, str(ROOT))
    from PIL import Image, ImageDraw

    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.runtime.export import export_onnx

    model = create_model("tiny", seed=0)
    bundle = save_model(model, work / "bundle")
    export_onnx(bundle, work / "search-bundle")
    photos = work / "photos"
    photos.mkdir()
    for i in range(args.photos):
        img = Image.new("RGB", (160, 120), (40 * (i % 6), 90, 200 - 30 * (i % 5)))
        ImageDraw.Draw(img).ellipse((20 + i % 40, 20, 120, 100), fill=(230, 200, 30))
        img.save(photos / f"p{i}.jpg")
    sketch = work / "sketch.png"
    img = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(img).ellipse((20, 20, 108, 108), outline="black", width=4)
    img.save(sketch)

    dmwan = [str(venv / "bin" / "dmwan")]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    store = work / "store"

    def run(*a: object) -> subprocess.CompletedProcess:
        r = subprocess.run([*dmwan, *map(str, a)], capture_output=True, text=True, env=env, cwd=work)
        if r.returncode != 0:
            raise SystemExit(f"dmwan {a[0]} failed in the search-only venv:\n{r.stderr[-2000:]}")
        return r

    report = json.loads(run("ingest", photos, "-c", "pics", "-m", work / "search-bundle", "--store", store,
                            "--json").stdout)
    cold = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        run("query", sketch, "-c", "pics", "--store", store, "-k", 5)
        cold.append(time.perf_counter() - t0)
    text = run("query", "--text", "a yellow circle", "-c", "pics", "--store", store, "--paths", "-k", 3).stdout.split()
    proc = subprocess.Popen([*dmwan, "serve", "-c", "pics", "--store", str(store), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = next(m.group(1) for line in proc.stderr if (m := re.search(r"serving .* at (http://\S+?)/ ", line)))
        import httpx

        answer = httpx.post(f"{url}/collections/pics/search", params={"k": 3},
                            files=[("sketch", ("s.png", sketch.read_bytes(), "image/png"))], timeout=60)
        answer.raise_for_status()
        served = len(answer.json()["queries"][0]["results"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print(f"search-only venv {venv}: {du(venv) / 1e6:.0f} MB, torch absent")
    print("  largest: " + ", ".join(f"{name} {size / 1e6:.0f} MB" for size, name in sizes[:6]))
    print(f"  ingest: {report['added']} photos, {report['images_per_second']:.1f} images/s")
    print(f"  cold dmwan query: median {statistics.median(cold):.2f} s of {args.runs} "
          f"(min {min(cold):.2f}, max {max(cold):.2f})")
    print(f"  text query: {len(text)} results; dmwan serve: {served} results over HTTP")
    if not args.keep and args.venv is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
