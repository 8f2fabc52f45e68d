"""The ablation table on the procedural benchmark: which parts of DMWAN help, with what spread.

Usage::

    python benchmarks/ablation.py                        # 7 variants x {0%, 30%} low quality x 2 seeds
    python benchmarks/ablation.py --seeds 0 1 2 --jobs 2 --workdir /data/ablation
    python benchmarks/ablation.py --write BENCHMARKS.md  # also replace the table in BENCHMARKS.md
    python benchmarks/ablation.py --config training/configs/glyphs_tiny.yaml --marker glyphs
    python benchmarks/ablation.py --data data/ultimate --jobs 1 --threads 2 --marker ultimate

With ``--data DIR`` the runs train on a real folder (`benchmarks/icons.py` writes some) with the
``folder_efficientnet`` recipe unless ``--config`` says otherwise, at one low-quality share (0).

Every run trains the configured model (``training/configs/procedural_tiny.yaml`` by default, its
budget unchanged) with one switch of ``ModelConfig`` changed, on a benchmark generated with the
given share of low-quality samples. It reports the unseen-class figures of the epoch chosen on
the validation classes (held out of the seen classes, as `dmwan train` chooses the bundle it
exports) and of the last epoch: the test classes choose nothing. Runs are independent processes, ``--jobs`` at a time with
``--threads`` torch threads each; each writes ``<workdir>/results/<run>.json``, and a run whose
file exists is not run again, so an interrupted table finishes where it stopped. The last
epoch's bundle of each run is kept as ``<workdir>/bundles/<run>``.

Besides mAP@all and P@100, each run records what explains them: the weight list's statistics
in the last epoch, each unseen class's AP, and, per epoch, how the weighting's per-sketch and
per-photo alignment memories (what the weights are made from) separate low-quality training
samples from clean ones (AUC: 1.0 = every low-quality sample scored below every clean one,
0.5 = no separation).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CONFIG = str(ROOT / "training" / "configs" / "procedural_tiny.yaml")

#: Variant name -> (description, ModelConfig overrides). "full" is the model as configured
#: (the defaults); every other variant changes one switch of it.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "full": ("full DMWAN, as configured (one-sided per-sample weighting, 1 sd tolerance)", {}),
    "softmax": ("full DMWAN, softmax weighting (the paper's reading)", {"weight_one_sided": False}),
    "no_tolerance": ("full DMWAN, every sample below its class's mean loses weight", {"weight_tolerance": 0.0}),
    "batch_std": ("full DMWAN, scores standardised over the batch, not per class",
                  {"weight_standardise": "batch"}),
    "no_weighting": ("without the dynamic weighting (uniform weights)", {"use_weighting": False}),
    "triplet": ("plain triplet instead of quadruplet", {"loss": "triplet"}),
    "no_text": ("without the text (semantic) loss", {"use_text": False}),
    "no_local": ("without the local level", {"use_local": False, "token_loss_weight": 0.0}),
    "frozen_linear": ("frozen backbone, linear head", {"freeze_backbone": True, "domain_embedding": False}),
}
#: Fusion weights of the token re-rank measured on each run (inf: MaxSim alone; 0: no re-rank).
RERANK_BETAS = (0.0, 0.5, 1.0, 2.0, float("inf"))
MARK_BEGIN = "<!-- ablation:begin -->"
MARK_END = "<!-- ablation:end -->"


def run_name(variant: str, low_quality: float, seed: int) -> str:
    return f"{variant}-lq{int(round(low_quality * 100)):02d}-s{seed}"


def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and score one (variant, low-quality share, seed); returns the result record."""
    import torch

    from dmwan_qdrant.eval.evaluate import evaluate_split
    from dmwan_qdrant.eval.metrics import METRICS
    from dmwan_qdrant.model import load_model
    from dmwan_qdrant.training.config import TrainConfig
    from dmwan_qdrant.training.data import prepare_split
    from dmwan_qdrant.eval.rerank import rerank_metrics
    from dmwan_qdrant.training.loop import BEST_DIR, MODEL_DIR, WorkerContext, discard_checkpoint, run_training

    torch.set_num_threads(job["threads"])
    base = TrainConfig.from_file(Path(job["config"]))
    overrides = dict(base.model.overrides or {})
    overrides.update(VARIANTS[job["variant"]][1])
    cfg = base.with_overrides(**{
        "name": job["name"],
        "seed": job["seed"],
        "storage_path": job["runs"],
        "data.root": job["data_root"],
        **({} if job["folder"] else {"data.generate.low_quality": job["low_quality"]}),
        "model.overrides": overrides,
        **job["config_overrides"],
    })
    last_dir: dict[str, Path | None] = {"dir": None}

    def report(metrics: dict[str, Any], folder: Path | None) -> None:
        last_dir["dir"] = folder

    t0 = time.perf_counter()
    ctx = WorkerContext(0, 1, torch.device("cpu"), lambda m: m, lambda dl: dl, report, None)
    state = run_training(cfg, ctx)
    split = prepare_split(cfg)
    history = state.history
    selected, last = history[state.best_epoch - 1], history[-1]
    final = load_model(last_dir["dir"] / MODEL_DIR)
    per_class = evaluate_split(final, split, batch_size=cfg.eval_batch_size, per_class=True)["per_class_ap"]
    # The token re-rank of the exported (selected) bundle, on validation and test classes.
    chosen = load_model(last_dir["dir"] / BEST_DIR)
    # The last epoch's bundle stays, for offline looks at what the model learned
    # (benchmarks/quality_scores.py); the rest of the checkpoint goes.
    kept = Path(job["runs"]).parent / "bundles" / job["name"]
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(last_dir["dir"] / MODEL_DIR, kept)
    discard_checkpoint(ctx.resume_dir)
    rerank = {classes: {str(beta): m for beta, m in rerank_metrics(chosen, split, RERANK_BETAS, classes).items()}
              for classes in ("validation", "test")}
    keep = ("epoch", "loss", "mAP@all", "P@100", "mAP@all plain", "val mAP@all", "lq_auc_sketch", "lq_auc_photo")
    return {
        "name": job["name"], "variant": job["variant"], "low_quality": job["low_quality"], "seed": job["seed"],
        "selected_epoch": state.best_epoch,
        # The epoch chosen on the validation classes (what `dmwan train` exports), and the last one.
        "selected": {k: selected[k] for k in METRICS + ("val mAP@all",) if k in selected},
        "last": {k: last[k] for k in METRICS if k in last},
        "per_class_ap": per_class, "rerank": rerank,
        # The exported bundle's own re-rank default, chosen on its validation classes (its card).
        "rerank_choice": (chosen.metadata.get("card") or {}).get("rerank"),
        "weights": {k: last[k] for k in last if k.startswith("w_")},
        "lq_auc_sketch": last.get("lq_auc_sketch"), "lq_auc_photo": last.get("lq_auc_photo"),
        "history": [{k: h[k] for k in keep if k in h} for h in history],
        "seconds": time.perf_counter() - t0,
    }


def _work(job: dict[str, Any]) -> str:
    result = train_one(job)
    out = Path(job["out"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    sel, last = result["selected"], result["last"]
    return (f"{job['name']}: mAP@all {sel['mAP@all']:.4f} (epoch {result['selected_epoch']}, chosen on validation)  "
            f"last {last['mAP@all']:.4f}  ({result['seconds']:.0f} s)")


def _mean_spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.1f} ± {100 * spread:.1f}"


def _runs(results: list[dict[str, Any]], variant: str, lq: float) -> list[dict[str, Any]]:
    return [r for r in results if r["variant"] == variant and abs(r["low_quality"] - lq) < 1e-9]


def table(results: list[dict[str, Any]], low_qualities: list[float]) -> str:
    """Markdown: one row per variant; per share of low quality, mAP@all and P@100 of the epoch
    chosen on the validation classes, and mAP@all of the last epoch (x100, mean ± sd over seeds)."""
    head = "| variant | " + " | ".join(
        f"mAP@all {int(lq * 100)}% LQ | P@100 {int(lq * 100)}% LQ | last epoch mAP@all {int(lq * 100)}% LQ"
        for lq in low_qualities) + " |"
    rows = [head, "|" + "---|" * (1 + 3 * len(low_qualities))]
    for variant, (description, _) in VARIANTS.items():
        cells = [description]
        for lq in low_qualities:
            runs = _runs(results, variant, lq)
            if runs:
                cells += [_mean_spread([r["selected"]["mAP@all"] for r in runs]) + f" (n={len(runs)})",
                          _mean_spread([r["selected"]["P@100"] for r in runs]),
                          _mean_spread([r["last"]["mAP@all"] for r in runs])]
            else:
                cells += ["-", "-", "-"]
        if any(_runs(results, variant, lq) for lq in low_qualities):
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def paired(results: list[dict[str, Any]], low_qualities: list[float], reference: str = "full") -> str:
    """Markdown lines: each variant against ``reference`` seed by seed (the same data and seed,
    one switch changed): validation mAP@all of the selected epoch (what a default is chosen by),
    then unseen mAP@all of the selected and of the last epoch, x100."""
    lines = []
    for lq in low_qualities:
        ref = {r["seed"]: r for r in _runs(results, reference, lq)}
        for variant in VARIANTS:
            pairs = [(ref[r["seed"]], r) for r in sorted(_runs(results, variant, lq), key=lambda r: r["seed"])
                     if variant != reference and r["seed"] in ref]
            if not pairs:
                continue
            cells = []
            for which, key in (("validation", "val mAP@all"), ("selected", "mAP@all"), ("last", "mAP@all")):
                part = "selected" if which == "validation" else which
                diffs = [f[part][key] - v[part][key] for f, v in pairs if key in f[part] and key in v[part]]
                if diffs:
                    label = "validation" if which == "validation" else f"{which} epoch"
                    cells.append(f"{label} {_mean_spread(diffs)} ({', '.join(f'{100 * d:+.1f}' for d in diffs)})")
            lines.append(f"- {int(lq * 100)}% low quality, `{reference}` minus `{variant}` per seed: "
                         + "; ".join(cells) + ".")
    return "\n".join(lines)


def auc_table(results: list[dict[str, Any]], low_qualities: list[float]) -> str:
    """Markdown: how the weighted variants' memories rank the bad training samples below clean
    ones (AUC of the last epoch, mean ± sd over seeds), per share of low quality."""
    rows = ["| variant | low quality | AUC sketches | AUC photos |", "|---|---|---|---|"]
    for variant in VARIANTS:
        for lq in low_qualities:
            runs = _runs(results, variant, lq)
            cells = []
            for key in ("lq_auc_sketch", "lq_auc_photo"):
                values = [r[key] for r in runs if r.get(key) is not None]
                cells.append(f"{statistics.fmean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0:.2f}"
                             if values else "-")
            if any(c != "-" for c in cells):
                rows.append(f"| {variant} | {int(lq * 100)}% | {cells[0]} | {cells[1]} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def rerank_table(results: list[dict[str, Any]], low_qualities: list[float], variant: str) -> str:
    """Markdown: the exported bundles' token re-rank of the top 100, per fusion weight beta
    (0 = cosine only, inf = MaxSim only): P@10 and mAP@200 on validation and test classes."""
    rows = ["| low quality | beta | P@10 validation | P@10 test | mAP@200 validation | mAP@200 test |",
            "|---|---|---|---|---|---|"]
    for lq in low_qualities:
        runs = [r for r in _runs(results, variant, lq) if r.get("rerank")]
        if not runs:
            continue
        for beta in runs[0]["rerank"]["validation"]:
            cells = [_mean_spread([r["rerank"][c][beta][m] for r in runs]) for m in ("P@10", "mAP@200")
                     for c in ("validation", "test")]
            rows.append(f"| {int(lq * 100)}% | {beta} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def rerank_choices(results: list[dict[str, Any]], low_qualities: list[float], variant: str) -> str:
    """Markdown lines: how often the exported bundles chose to re-rank by default on their own
    validation classes (`choose_rerank`), and the unseen test P@10 / mAP@200 a user then gets
    with each bundle's default, against the cosine ranking alone."""
    lines = []
    for lq in low_qualities:
        runs = [r for r in _runs(results, variant, lq) if r.get("rerank_choice") and r.get("rerank")]
        if not runs:
            continue

        def served(r: dict[str, Any], metric: str) -> float:
            choice = r["rerank_choice"]
            beta = str(float(choice["weight"])) if choice["on"] else "0.0"
            return r["rerank"]["test"][beta][metric]

        on = sum(bool(r["rerank_choice"]["on"]) for r in runs)
        gains = ", ".join(f"{100 * r['rerank_choice']['gain_mAP@200']:+.1f} ± {100 * r['rerank_choice']['se_mAP@200']:.1f}"
                          for r in sorted(runs, key=lambda r: r["seed"]))
        lines.append(
            f"- {int(lq * 100)}% low quality: re-rank on by default in {on} of {len(runs)} bundles (validation mAP@200 "
            f"gain ± standard error per seed: {gains}); unseen test P@10 with each bundle's default "
            f"{_mean_spread([served(r, 'P@10') for r in runs])} against "
            f"{_mean_spread([r['rerank']['test']['0.0']['P@10'] for r in runs])} by cosine alone, mAP@200 "
            f"{_mean_spread([served(r, 'mAP@200') for r in runs])} against "
            f"{_mean_spread([r['rerank']['test']['0.0']['mAP@200'] for r in runs])}.")
    return "\n".join(lines)


def diagnostics(results: list[dict[str, Any]], low_qualities: list[float]) -> str:
    """Weight statistics, low-quality separation and per-class AP of the weighted variants."""
    def runs(variant: str, lq: float) -> list[dict[str, Any]]:
        return _runs(results, variant, lq)

    lines = []
    for lq in low_qualities:
        flat = runs("no_weighting", lq)
        for variant in ("full", "softmax"):
            weighted = runs(variant, lq)
            if not weighted:
                continue
            keys = sorted(weighted[0]["weights"])
            line = f"- {int(lq * 100)}% low quality, `{variant}`: last-epoch weights " + ", ".join(
                f"{k} {statistics.fmean(r['weights'][k] for r in weighted):.2f}" for k in keys)
            lines.append(line + ".")
            if flat:
                classes = sorted(weighted[0]["per_class_ap"])
                diff = {c: statistics.fmean(r["per_class_ap"][c] for r in weighted)
                        - statistics.fmean(r["per_class_ap"][c] for r in flat) for c in classes}
                ranked = sorted(diff.items(), key=lambda kv: kv[1])
                lines.append(f"  Per-class AP minus no weighting: {', '.join(f'{c} {100 * d:+.1f}' for c, d in ranked)}.")
    return "\n".join(lines)


def write_section(path: Path, text: str, marker: str = "") -> None:
    """Replace the text between the ablation markers (``<!-- ablation[-marker]:begin -->`` and
    ``:end``) in ``path``; append the section if absent."""
    begin, end = (MARK_BEGIN, MARK_END) if not marker else (MARK_BEGIN.replace("ablation", f"ablation-{marker}"),
                                                          MARK_END.replace("ablation", f"ablation-{marker}"))
    doc = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--data", type=Path, default=None,
                        help="a real folder (photo/<class>/, sketch/<class>/, zeroshot/) instead of generated data")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--low-quality", nargs="+", type=float, default=[0.0, 0.3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--steps", type=int, default=None, help="override the config's steps per epoch")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="runs and results (default: dmwan-ablation-<config name> in the temp dir)")
    parser.add_argument("--write", type=Path, default=None, help="Markdown file whose ablation section to replace")
    parser.add_argument("--marker", default="", help="which ablation section of --write (one per benchmark)")
    parser.add_argument("--reference", default="full", choices=list(VARIANTS),
                        help="the variant every other one is paired with (default: full)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write the table from the results already in --workdir")
    args = parser.parse_args()
    if args.data is not None:
        args.low_quality = [0.0]
        if args.config == DEFAULT_CONFIG:
            args.config = str(ROOT / "training" / "configs" / "folder_efficientnet.yaml")
    if args.workdir is None:
        args.workdir = Path(tempfile.gettempdir()) / f"dmwan-ablation-{Path(args.config).stem}"

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
        data_root = args.data.resolve() if args.data else args.workdir / f"data-lq{int(round(lq * 100)):02d}"
        # generate each benchmark once, before the parallel runs read it
        where = {"data.name": "folder"} if args.data else {"data.generate.low_quality": lq}
        cfg = TrainConfig.from_file(Path(args.config)).with_overrides(**{"data.root": str(data_root), **where})
        split = prepare_split(cfg)
        unseen = len(split.unseen_classes)
        print(split.summary(), f"({int(lq * 100)}% low quality)", flush=True)
        for seed in args.seeds:
            for variant in args.variants:
                name = run_name(variant, lq, seed)
                out = results_dir / f"{name}.json"
                if out.exists() or args.report_only:
                    continue
                jobs.append({"name": name, "variant": variant, "low_quality": lq, "seed": seed, "folder": bool(args.data),
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
    header = (f"Unseen-class mAP@all (interpolated, as published) and P@100 (x100, mean ± sd over seeds {args.seeds}) "
              f"of the epoch chosen on the validation classes, and mAP@all of the last epoch; "
              f"`{Path(args.config).name}` ({args.epochs or o.epochs} epochs x {args.steps or o.steps_per_epoch} steps, "
              f"batch {o.batch_size}), chance mAP@all ≈ {100 / unseen:.1f}.")
    aucs = auc_table(results, args.low_quality)
    default = args.reference if any(_runs(results, args.reference, lq) for lq in args.low_quality) else None
    reranks = rerank_table(results, args.low_quality, default) if default else ""
    choices = rerank_choices(results, args.low_quality, default) if default else ""
    pairs = paired(results, args.low_quality, args.reference)
    text = (header + "\n\n" + table(results, args.low_quality) + "\n\n"
            + ((f"Paired with `{args.reference}` on the same data and seed (x100, mean ± sd of the differences; "
                f"positive: `{args.reference}` ahead):\n\n" + pairs + "\n\n") if pairs else "")
            + (("How the weighting ranks the bad training samples below clean ones (AUC, 0.5 = chance):\n\n"
                + aucs + "\n\n") if aucs else "")
            + ((f"The token re-rank of the top 100 (`{default}`, the exported bundle; fused score "
                "(cos + beta * mean MaxSim) / (1 + beta), x100, mean ± sd):\n\n" + reranks + "\n\n") if reranks else "")
            + (("Each bundle's own re-rank default (`choose_rerank` on its validation classes, w = 2: on when "
                "the mAP@200 gain exceeds two standard errors over the validation queries and P@10 does not "
                "fall):\n\n" + choices + "\n\n") if choices else "")
            + diagnostics(results, args.low_quality))
    print(text)
    if args.write:
        write_section(args.write, text, args.marker)
        print(f"wrote the table into {args.write}")


if __name__ == "__main__":
    main()
