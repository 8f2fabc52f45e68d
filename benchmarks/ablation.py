"""The ablation table on the procedural benchmark: which parts of DMWAN help, with what spread.

Usage::

    python benchmarks/ablation.py                        # 7 variants x {0%, 30%} low quality x 2 seeds
    python benchmarks/ablation.py --seeds 0 1 2 --jobs 2 --workdir /data/ablation
    python benchmarks/ablation.py --write BENCHMARKS.md  # also replace the table in BENCHMARKS.md

Every run trains the configured model (``training/configs/procedural_tiny.yaml`` by default, its
budget unchanged) with one switch of ``ModelConfig`` changed, on a benchmark generated with the
given share of low-quality samples, and scores the **last** epoch's model on the unseen classes
(no selection on the test classes). Runs are independent processes, ``--jobs`` at a time with
``--threads`` torch threads each; each writes ``<workdir>/results/<run>.json``, and a run whose
file exists is not run again, so an interrupted table finishes where it stopped.

Besides mAP@all and P@100, each run records what explains them: the weight list's statistics
in the last epoch, each unseen class's AP, and how the learned per-sketch alignment memory
(the quantity the weights are a softmax of) separates low-quality training sketches from clean
ones (AUC: 1.0 = every low-quality sketch scored below every clean one, 0.5 = no separation).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Variant name -> (description, ModelConfig overrides).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "full": ("full DMWAN, softmax weighting (the paper's reading)", {"weight_one_sided": False}),
    "one_sided": ("full DMWAN, one-sided weighting (our default)", {"weight_one_sided": True}),
    "no_weighting": ("without the dynamic weighting (uniform weights)", {"use_weighting": False}),
    "triplet": ("plain triplet instead of quadruplet", {"loss": "triplet", "weight_one_sided": False}),
    "no_text": ("without the text (semantic) loss", {"use_text": False, "weight_one_sided": False}),
    "no_local": ("without the local level", {"use_local": False, "token_loss_weight": 0.0, "weight_one_sided": False}),
    "frozen_linear": ("frozen backbone, linear head", {"freeze_backbone": True, "domain_embedding": False,
                                                       "weight_one_sided": False}),
}
# The single-switch variants change the paper's reading ("full"), which they were measured against.
MARK_BEGIN = "<!-- ablation:begin -->"
MARK_END = "<!-- ablation:end -->"


def run_name(variant: str, low_quality: float, seed: int) -> str:
    return f"{variant}-lq{int(round(low_quality * 100)):02d}-s{seed}"


def _auc(low: list[float], clean: list[float]) -> float | None:
    """P(score of a low-quality sketch < score of a clean one), ties counting half."""
    if not low or not clean:
        return None
    import numpy as np

    lo, cl = np.asarray(low), np.asarray(clean)
    less = (lo[:, None] < cl[None, :]).mean()
    ties = (lo[:, None] == cl[None, :]).mean()
    return float(less + 0.5 * ties)


def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and score one (variant, low-quality share, seed); returns the result record."""
    import torch

    from dmwan_qdrant.eval.evaluate import evaluate_split
    from dmwan_qdrant.model import load_model
    from dmwan_qdrant.training.config import TrainConfig
    from dmwan_qdrant.training.data import prepare_split
    from dmwan_qdrant.training.loop import MODEL_DIR, STATE_FILE, WorkerContext, run_training

    torch.set_num_threads(job["threads"])
    base = TrainConfig.from_file(Path(job["config"]))
    overrides = dict(base.model.overrides or {})
    overrides.update(VARIANTS[job["variant"]][1])
    cfg = base.with_overrides(**{
        "name": job["name"],
        "seed": job["seed"],
        "storage_path": job["runs"],
        "data.root": job["data_root"],
        "data.generate.low_quality": job["low_quality"],
        "model.overrides": overrides,
        **job["config_overrides"],
    })
    last: dict[str, Path | None] = {"dir": None}

    def report(metrics: dict[str, Any], folder: Path | None) -> None:
        last["dir"] = folder

    t0 = time.perf_counter()
    ctx = WorkerContext(0, 1, torch.device("cpu"), lambda m: m, lambda dl: dl, report, None)
    state = run_training(cfg, ctx)
    final = load_model(last["dir"] / MODEL_DIR)
    split = prepare_split(cfg)
    scores = evaluate_split(final, split, batch_size=cfg.eval_batch_size, per_class=True)

    # Per-sketch alignment memory (EMA of the standardised alignment score) vs sample quality.
    memory = torch.load(last["dir"] / STATE_FILE, map_location="cpu", weights_only=False)["weighting"]
    manifest = json.loads((Path(cfg.data.root) / "manifest.json").read_text())
    low_set = set(manifest.get("low_quality", []))
    root = Path(cfg.data.root)
    low, clean = [], []
    for i, s in enumerate(split.train_sketches):
        value = float(memory[i]) if i < memory.numel() else float("nan")
        if value != value:  # never drawn
            continue
        (low if str(s.path.relative_to(root)) in low_set else clean).append(value)
    history = state.history
    return {
        "name": job["name"], "variant": job["variant"], "low_quality": job["low_quality"], "seed": job["seed"],
        "mAP@all": scores["mAP@all"], "P@100": scores["P@100"], "mAP@200": scores["mAP@200"],
        "per_class_ap": scores["per_class_ap"],
        "best_epoch_mAP@all": max(h["mAP@all"] for h in history),
        "weights": {k: history[-1][k] for k in history[-1] if k.startswith("w_")},
        "low_quality_memory_auc": _auc(low, clean),
        "history": [{k: h[k] for k in ("epoch", "loss", "mAP@all", "P@100") if k in h} for h in history],
        "seconds": time.perf_counter() - t0,
    }


def _work(job: dict[str, Any]) -> str:
    result = train_one(job)
    out = Path(job["out"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    return f"{job['name']}: mAP@all {result['mAP@all']:.4f}  P@100 {result['P@100']:.4f}  ({result['seconds']:.0f} s)"


def _mean_spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.1f} ± {100 * spread:.1f}"


def table(results: list[dict[str, Any]], low_qualities: list[float]) -> str:
    """Markdown: one row per variant, mAP@all and P@100 (x100, mean ± sd over seeds) per share."""
    head = "| variant | " + " | ".join(
        f"mAP@all {int(lq * 100)}% LQ | P@100 {int(lq * 100)}% LQ" for lq in low_qualities) + " |"
    rows = [head, "|" + "---|" * (1 + 2 * len(low_qualities))]
    for variant, (description, _) in VARIANTS.items():
        cells = [description]
        for lq in low_qualities:
            runs = [r for r in results if r["variant"] == variant and abs(r["low_quality"] - lq) < 1e-9]
            if runs:
                cells += [_mean_spread([r["mAP@all"] for r in runs]) + f" (n={len(runs)})",
                          _mean_spread([r["P@100"] for r in runs])]
            else:
                cells += ["-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def diagnostics(results: list[dict[str, Any]], low_qualities: list[float]) -> str:
    """Weight statistics, low-quality separation and per-class AP of the weighted variants."""
    def runs(variant: str, lq: float) -> list[dict[str, Any]]:
        return [r for r in results if r["variant"] == variant and abs(r["low_quality"] - lq) < 1e-9]

    lines = []
    for lq in low_qualities:
        flat = runs("no_weighting", lq)
        for variant in ("full", "one_sided"):
            weighted = runs(variant, lq)
            if not weighted:
                continue
            keys = sorted(weighted[0]["weights"])
            aucs = [r["low_quality_memory_auc"] for r in weighted if r["low_quality_memory_auc"] is not None]
            line = f"- {int(lq * 100)}% low quality, `{variant}`: last-epoch weights " + ", ".join(
                f"{k} {statistics.fmean(r['weights'][k] for r in weighted):.2f}" for k in keys)
            if aucs:
                line += f"; low-quality training sketches score below clean ones with AUC {statistics.fmean(aucs):.2f}"
            lines.append(line + ".")
            if flat:
                classes = sorted(weighted[0]["per_class_ap"])
                diff = {c: statistics.fmean(r["per_class_ap"][c] for r in weighted)
                        - statistics.fmean(r["per_class_ap"][c] for r in flat) for c in classes}
                ranked = sorted(diff.items(), key=lambda kv: kv[1])
                lines.append(f"  Per-class AP minus no weighting: {', '.join(f'{c} {100 * d:+.1f}' for c, d in ranked)}.")
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace the text between the ablation markers in ``path`` (append the section if absent)."""
    doc = path.read_text() if path.exists() else ""
    block = f"{MARK_BEGIN}\n{text}\n{MARK_END}"
    if MARK_BEGIN in doc and MARK_END in doc:
        doc = re.sub(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "training/configs/procedural_tiny.yaml"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--low-quality", nargs="+", type=float, default=[0.0, 0.3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--steps", type=int, default=None, help="override the config's steps per epoch")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-ablation")
    parser.add_argument("--write", type=Path, default=None, help="Markdown file whose ablation section to replace")
    args = parser.parse_args()

    config_overrides: dict[str, Any] = {"eval_batch_size": 256, "scaling.max_failures": 0}
    if args.epochs:
        config_overrides["optim.epochs"] = args.epochs
    if args.steps:
        config_overrides["optim.steps_per_epoch"] = args.steps
    results_dir = args.workdir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)

    from dmwan_qdrant.training.config import TrainConfig
    from dmwan_qdrant.training.data import prepare_split

    jobs, unseen = [], 1
    for lq in args.low_quality:
        data_root = args.workdir / f"data-lq{int(round(lq * 100)):02d}"
        # generate each benchmark once, before the parallel runs read it
        cfg = TrainConfig.from_file(Path(args.config)).with_overrides(
            **{"data.root": str(data_root), "data.generate.low_quality": lq})
        split = prepare_split(cfg)
        unseen = len(split.unseen_classes)
        print(split.summary(), f"({int(lq * 100)}% low quality)", flush=True)
        for seed in args.seeds:
            for variant in args.variants:
                name = run_name(variant, lq, seed)
                out = results_dir / f"{name}.json"
                if out.exists():
                    continue
                jobs.append({"name": name, "variant": variant, "low_quality": lq, "seed": seed,
                             "config": args.config, "data_root": str(data_root), "runs": str(args.workdir / "runs"),
                             "threads": args.threads, "config_overrides": config_overrides, "out": str(out)})
    print(f"{len(jobs)} runs to do, {args.jobs} at a time", flush=True)
    if jobs:
        with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            for line in pool.imap_unordered(_work, jobs):
                print(line, flush=True)

    results = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]
    results = [r for r in results if r["variant"] in args.variants and r["seed"] in args.seeds
               and any(abs(r["low_quality"] - lq) < 1e-9 for lq in args.low_quality)]
    cfg = TrainConfig.from_file(Path(args.config))
    o = cfg.optim
    header = (f"Unseen-class mAP@all and P@100 (x100, mean ± sd over seeds {args.seeds}) of the last epoch, "
              f"`{Path(args.config).name}` ({args.epochs or o.epochs} epochs x {args.steps or o.steps_per_epoch} steps, "
              f"batch {o.batch_size}), chance mAP@all ≈ {100 / unseen:.1f}.")
    text = header + "\n\n" + table(results, args.low_quality) + "\n\n" + diagnostics(results, args.low_quality)
    print(text)
    if args.write:
        write_section(args.write, text)
        print(f"wrote the table into {args.write}")


if __name__ == "__main__":
    main()
