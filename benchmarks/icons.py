"""Real-data benchmarks from icon sets that ship on the npm registry, in the `dmwan train --data` layout.

Each benchmark pairs two renderings of the same named icons that differ as a sketch differs
from a photo: line drawings as the sketches, filled coloured pictures as the photos.

- ``ultimate``: Streamline Ultimate (CC BY 4.0): the line set as sketches, the colour set as
  photos (one per class; filled, shaded, often with other line weights and details). 663
  classes have both.
- ``iconpark``: IconPark (Apache-2.0): the outline set as sketches, the multi-colour set as
  photos (the same drawing with coloured fills: the easier pair). 2,658 classes.
- ``freehand``: Streamline Freehand (CC BY 4.0): hand-drawn line icons as sketches, their colour
  version (coloured accents) as photos. 982 classes have both.

The packages (`@iconify-json/*`, pinned below) are fetched with ``npm pack`` into a cache folder,
their SVGs rendered to PNG with CairoSVG (``pip install cairosvg``), and a seeded draw of
``--classes`` classes is written with ``--unseen`` of them listed in
``zeroshot/unseen_classes.txt``. ``--train`` then runs ``dmwan train --data OUT --json`` on it
(the recipe holds out its own validation classes from the seen ones), and ``--zero-shot`` scores
the untrained ``efficientnet_lite0`` bundle on the unseen classes.

    python benchmarks/icons.py --set iconpark --out data/iconpark --zero-shot --train
    python benchmarks/icons.py --set ultimate --out data/ultimate --zero-shot --train
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dmwan_qdrant.data.iconsets import class_name, fetch, icon_svg, render  # noqa: E402
from dmwan_qdrant.errors import DatasetError  # noqa: E402

#: benchmark -> (sketch package, [photo packages]) as name@version.
SETS: dict[str, tuple[str, list[str]]] = {
    "ultimate": ("@iconify-json/streamline-ultimate@1.2.2", ["@iconify-json/streamline-ultimate-color@1.2.2"]),
    "iconpark": ("@iconify-json/icon-park-outline@1.2.4", ["@iconify-json/icon-park@1.2.4"]),
    "freehand": ("@iconify-json/streamline-freehand@1.2.1", ["@iconify-json/streamline-freehand-color@1.2.2"]),
}
def build(benchmark: str, out: Path, classes: int, unseen: int, size: int, seed: int) -> dict:
    """Write the benchmark folder; returns a summary. Re-running with the same arguments keeps it."""
    sketch_spec, photo_specs = SETS[benchmark]
    try:
        sketch_set = fetch(sketch_spec)
        photo_sets = [fetch(spec) for spec in photo_specs]
    except DatasetError as exc:
        sys.exit(f"error: {exc}")
    common = set(sketch_set["icons"])
    for s in photo_sets:
        common &= set(s["icons"])
    names = sorted(common)
    if classes > len(names):
        sys.exit(f"error: {benchmark} has {len(names)} classes with every rendering; asked for {classes}")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(names, classes))
    held_out = sorted(rng.sample(chosen, unseen))
    marker = out / "benchmark.json"
    summary = {"benchmark": benchmark, "packages": [sketch_spec, *photo_specs], "classes": classes,
               "unseen": unseen, "size": size, "seed": seed, "sketches_per_class": 1,
               "photos_per_class": len(photo_sets)}
    if marker.exists() and json.loads(marker.read_text()) == summary:
        return summary
    t0 = time.perf_counter()
    for icon in chosen:
        label = class_name(icon)
        (out / "sketch" / label).mkdir(parents=True, exist_ok=True)
        (out / "photo" / label).mkdir(parents=True, exist_ok=True)
        render(icon_svg(sketch_set, icon), size).save(out / "sketch" / label / "00000.png")
        for i, photo_set in enumerate(photo_sets):
            render(icon_svg(photo_set, icon), size).save(out / "photo" / label / f"{i:05d}.png")
    (out / "zeroshot").mkdir(parents=True, exist_ok=True)
    (out / "zeroshot" / "unseen_classes.txt").write_text("".join(class_name(c) + "\n" for c in held_out))
    marker.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}: {classes} classes ({unseen} unseen), {classes * (1 + len(photo_sets))} images "
          f"in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return summary


def zero_shot(out: Path, preset: str = "efficientnet_lite0") -> dict:
    """The untrained pretrained bundle of ``preset`` scored on the unseen classes."""
    bundle = out / f"zero-shot-{preset}"
    if not bundle.exists():
        subprocess.run(["dmwan", "model", "create", "--preset", preset, "-o", str(bundle)], check=True,
                       stdout=subprocess.DEVNULL)
    result = subprocess.run(["dmwan", "eval", "--model", str(bundle), "--dataset", "folder", "--root", str(out),
                             "--json"], check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=sorted(SETS), required=True)
    p.add_argument("--out", type=Path, required=True, help="the benchmark folder to write")
    p.add_argument("--classes", type=int, default=600, help="classes drawn (default 600)")
    p.add_argument("--unseen", type=int, default=150, help="of which unseen test classes (default 150)")
    p.add_argument("--size", type=int, default=224, help="image side in px (default 224)")
    p.add_argument("--seed", type=int, default=0, help="the class draw")
    p.add_argument("--zero-shot", action="store_true", help="score the untrained efficientnet_lite0 bundle")
    p.add_argument("--train", action="store_true", help="then run `dmwan train --data OUT --json`")
    p.add_argument("--train-args", default="", help="more options for dmwan train, e.g. '--name x --storage-path y'")
    args = p.parse_args(argv)
    summary = build(args.set, args.out, args.classes, args.unseen, args.size, args.seed)
    report: dict = {"benchmark": summary}
    if args.zero_shot:
        report["zero_shot"] = zero_shot(args.out)
        print(f"zero-shot efficientnet_lite0: unseen mAP@all {report['zero_shot']['mAP@all']:.4f}  "
              f"P@100 {report['zero_shot']['P@100']:.4f}", file=sys.stderr)
    if args.train:
        cmd = ["dmwan", "train", "--data", str(args.out), "--json", *args.train_args.split()]
        t0 = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} exited {result.returncode}: {result.stderr.strip().splitlines()[-1:]}")
        report["train"] = json.loads(result.stdout)
        report["train"]["wall_seconds"] = time.perf_counter() - t0
        sys.stderr.write(result.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
