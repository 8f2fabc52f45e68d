"""Which choices of the shipped model's recipe pay, measured on classes it never trained on.

    python scripts/sketch_model_ablation.py --work data/sketch-model --variants full uniform --seeds 0 1 2

Each variant is the recipe of `build_sketch_model.py` with one switch changed, trained at a
smaller budget (``--epochs`` x ``--steps``) on the same training folder, and scored on its
validation classes (which choose the epoch, as in every run), on the test classes of every set
(their eval folders, never trained on) and on the held-out Fluent set. Paired differences with
``full`` on the same seed are printed at the end; ``--out`` keeps every figure as JSON.

Variants, each against the recipe without knowledge preservation: ``full`` (pseudo-sketches, random
class proxies, the dynamic weighting),
``no_pseudo`` (no pseudo-sketches of the coloured pictures), ``no_renders`` (no furniture
renderings among the photos), ``no_pictures`` (no Art4Apps word pictures and ink outlines), ``sentence`` (class anchors from the
sentence encoder instead of random proxies), ``uniform`` (no dynamic weighting), ``preserve``
(knowledge preservation of the starting model's photo embeddings, weight 1), ``preserve10`` (the same
at weight 10: photos held near where ImageNet puts them), ``size224`` (224 px, the size ImageNet
trained at, instead of 160); ``a+b`` turns on both
switches. With
``--real-photos DIR`` (a `benchmarks/real_photos.py` folder) each bundle is also scored there:
reported, never used to choose.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_sketch_model import HELD_OUT_SETS, train  # noqa: E402
from shipping import score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

VARIANTS: dict[str, dict] = {
    "full": {},
    "no_pseudo": {"data.drop": ["-edges-"]},
    "no_renders": {"data.drop": ["sweethome3d-"]},
    "no_pictures": {"data.drop": ["art4apps-"]},
    "sentence": {"model.semantic_anchors": "sentence"},
    "uniform": {"model.use_weighting": False},
    "preserve": {"model.preserve_weight": 1.0},
    "preserve10": {"model.preserve_weight": 10.0},
    "size224": {"model.image_size": 224},
}


def without(work: Path, drops: list[str]) -> Path:
    """The training folder less the files whose names hold any of ``drops`` (hard links to the
    same images): ``-edges-`` marks a pseudo-sketch, ``sweethome3d-`` a furniture rendering,
    ``art4apps-`` a word picture or its outline."""
    src = work / "train"
    dst = work / ("train-without" + "".join(f"-{d.strip('-')}" for d in sorted(drops)))
    for f in src.rglob("*"):
        if f.is_file() and not any(d in f.name for d in drops):
            target = dst / f.relative_to(src)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, target)
    return dst


def run(work: Path, variant: str, seed: int, epochs: int, steps: int, real_photos: Path | None = None) -> dict:
    """Train one variant (or resume it) and score its bundle."""
    from dmwan_qdrant.encoder import load_bundle

    extra: dict = {"model.preserve_weight": 0.0}  # every switch against the same base
    drops: list[str] = []
    for switch in variant.split("+"):  # "sentence+no_pseudo": both switches at once
        drops += VARIANTS[switch].get("data.drop", [])
        extra.update({k: v for k, v in VARIANTS[switch].items() if k != "data.drop"})
    if drops:
        extra["data.root"] = str(without(work, drops))
    name = f"ablation-{variant}-s{seed}"
    bundle = work / "runs" / name / "model"
    if not bundle.is_dir():
        train(work, False, epochs, steps, seed, name, extra)
    record = json.loads((bundle / "config.json").read_text())
    metrics = record["metadata"]["card"]["metrics"]
    model = load_bundle(bundle, "cpu", "torch")
    out = {"validation mAP@all": metrics["validation"]["mAP@all"], "sets": {}}
    for folder in sorted((work / "eval").iterdir()):
        classes = (folder / "zeroshot" / "unseen_classes.txt").read_text().split()
        out["sets"][folder.name] = score(model, folder, classes)["mAP@all"]
    within = [v for k, v in out["sets"].items() if k not in HELD_OUT_SETS]
    out["within-set test mAP@all"] = statistics.mean(within)
    out["held-out sets mAP@all"] = statistics.mean(out["sets"][k] for k in HELD_OUT_SETS)
    if real_photos is not None:
        from real_photos import score as real_score

        out["real photos mAP@all plain"] = real_score(model, real_photos)["mAP@all plain"]
    print(f"{name}: validation {out['validation mAP@all']:.4f}  within-set test {out['within-set test mAP@all']:.4f}  "
          f"held-out {out['held-out sets mAP@all']:.4f}"
          + (f"  real photos {out['real photos mAP@all plain']:.4f}" if real_photos else ""), file=sys.stderr)
    return out


def _variant(text: str) -> str:
    unknown = [s for s in text.split("+") if s not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown switch {unknown[0]!r} (switches: {', '.join(VARIANTS)})")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("data/sketch-model"))
    p.add_argument("--variants", nargs="+", type=_variant, default=list(VARIANTS),
                   help=f"switches ({', '.join(VARIANTS)}), several joined by '+'")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    p.add_argument("--real-photos", type=Path, default=None, help="also score on this real-photo folder")
    args = p.parse_args(argv)
    work = args.work.resolve()
    results: dict = {}
    for seed in args.seeds:
        for variant in args.variants:
            results.setdefault(variant, {})[seed] = run(work, variant, seed, args.epochs, args.steps, args.real_photos)
            if args.out:
                args.out.write_text(json.dumps(results, indent=2))
    keys = ("validation mAP@all", "within-set test mAP@all", "held-out sets mAP@all")
    if args.real_photos:
        keys += ("real photos mAP@all plain",)
    print("| variant | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1))
    for variant, by_seed in results.items():
        cells = []
        for k in keys:
            values = [100 * r[k] for r in by_seed.values()]
            sd = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.1f}{sd} (n={len(values)})")
        print(f"| {variant} | " + " | ".join(cells) + " |")
    if "full" in results:
        for variant, by_seed in results.items():
            if variant == "full":
                continue
            for k in keys:
                diffs = [100 * (by_seed[s][k] - results["full"][s][k]) for s in by_seed if s in results["full"]]
                if diffs:
                    sd = f" ± {statistics.stdev(diffs):.1f}" if len(diffs) > 1 else ""
                    print(f"- {variant} minus full, {k}: {statistics.mean(diffs):+.1f}{sd} "
                          f"({', '.join(f'{d:+.1f}' for d in diffs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
