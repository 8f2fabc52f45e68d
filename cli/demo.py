"""`dmwan demo`: the whole product offline, on the procedural benchmark, in a few minutes.

Generate the benchmark, train the tiny model with Ray Train, ingest the unseen-class photos into
the embedded Qdrant store, query with the unseen-class sketches through the code path of
`dmwan query`, and score the rankings Qdrant returned against the offline evaluation.
"""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path
from typing import Optional

import typer

from dmwan_qdrant.settings import DEFAULT_HOST, DEFAULT_PORT

from .root import app

COLLECTION = "demo-unseen"


@app.command()
def demo(
    workdir: Path = typer.Option(Path("dmwan-demo"), help="folder for the data, the run and the store"),
    workers: int = typer.Option(1, help="Ray Train workers"),
    epochs: Optional[int] = typer.Option(None, help="override the config's epochs"),
    as_json: bool = typer.Option(False, "--json", help="print the figures as JSON on stdout (progress on stderr)"),
) -> None:
    """Train, ingest and query end to end on the procedural benchmark (offline, CPU)."""
    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.eval.evaluate import evaluate_split
    from dmwan_qdrant.eval.rerank import rerank_metrics
    from dmwan_qdrant.search.reranking import bundle_rerank
    from dmwan_qdrant.eval.through_store import evaluate_through_store
    from dmwan_qdrant.ingest import ingest
    from dmwan_qdrant.model.shipped import SHIPPED_MODEL, shipped_available
    from dmwan_qdrant.sheet import contact_sheets
    from dmwan_qdrant.store import open_store
    from dmwan_qdrant.training.config import TrainConfig
    from dmwan_qdrant.training.data import prepare_split
    from dmwan_qdrant.training.trainer import fit

    say = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    t0 = time.perf_counter()
    workdir = workdir.resolve()
    config_file = resources.files("dmwan_qdrant.training") / "configs" / "procedural_tiny.yaml"
    # Every core to training: one worker gets all of them as torch threads; several share them.
    cores = os.cpu_count() or 1
    overrides = {"storage_path": str(workdir / "runs"), "data.root": str(workdir / "data"), "scaling.workers": workers,
                 "scaling.cpus_per_worker": max(1, cores // workers) if workers <= cores else cores / workers}
    if epochs:
        overrides["optim.epochs"] = epochs
    cfg = TrainConfig.from_file(Path(str(config_file))).with_overrides(**overrides)

    say("== 1/4 train: the tiny DMWAN model on the procedural benchmark, with Ray Train")
    say("   (unseen classes are never trained on; first epoch starts after Ray's ~30 s start-up)")
    summary = fit(cfg, printer=lambda line: say(f"   {line}"))
    val = summary.get("validation")
    chosen = f"validation mAP@all {val['mAP@all']:.4f}, classes never trained on" if val else "the last epoch"
    say(f"   selected epoch {summary['best_epoch']} of {summary['epochs']} (by {chosen}), bundle {summary['model']}")

    say("== 2/4 ingest: unseen-class photos into the embedded Qdrant store")
    split = prepare_split(cfg)
    model = load_bundle(summary["model"], runtime="torch")
    folders = sorted({str(s.path.parent) for s in split.test_photos})
    with open_store(path=workdir / "store") as store:
        if store.collection_exists(COLLECTION) and store.get_model_record(COLLECTION).get("fingerprint") != model.fingerprint:
            store.delete_collection(COLLECTION)  # the demo's own collection, filled by an older run
        report = ingest(folders, store, COLLECTION, model, label_from_folder=True)
        points = store.count(COLLECTION)
        say(f"   {report.added} added, {report.unchanged} unchanged, {len(report.failed)} failed "
                   f"-> {points} points in '{COLLECTION}' ({workdir / 'store'})")

        say("== 3/4 query: every unseen-class sketch, through the `dmwan query` code path")
        through_qdrant = evaluate_through_store(store, COLLECTION, model, split)
    top = through_qdrant["top"]
    offline = evaluate_split(model, split)

    say("== 4/4 results on unseen classes (chance mAP@all is about "
               f"{1 / len(split.unseen_classes):.3f})")
    say(f"   through Qdrant : mAP@all {through_qdrant['mAP@all']:.4f}  P@100 {through_qdrant['P@100']:.4f}"
               f"  (plain AP {through_qdrant['mAP@all plain']:.4f})"
               f"   ({through_qdrant['queries']} sketch queries, full ranking)")
    say(f"   offline eval   : mAP@all {offline['mAP@all']:.4f}  P@100 {offline['P@100']:.4f}"
        f"  (plain AP {offline['mAP@all plain']:.4f})")
    last = summary.get("last")
    if last and summary["epochs"] != summary["best_epoch"]:
        say(f"   last epoch     : mAP@all {last['mAP@all']:.4f}  P@100 {last['P@100']:.4f}  (not selected)")
    say("   (mAP: interpolated AP as in the published tables; plain AP reads lower on the same ranking)")
    gap = abs(through_qdrant["mAP@all"] - offline["mAP@all"])
    say(f"   {'they agree' if gap < 1e-3 else 'THEY DISAGREE'}: |difference| {gap:.5f} "
               "(Qdrant ranks the same embeddings the offline evaluation scores)")
    rerank_on, weight = bundle_rerank(model)
    say(f"   token re-rank of the top 100 through Qdrant (fused, w={weight:g}): P@10 "
        f"{through_qdrant['P@10']:.4f} -> {through_qdrant['P@10 reranked']:.4f}"
        f"  ({'on' if rerank_on else 'off'} by default for this bundle, as its validation classes chose)")
    rerank = {c: rerank_metrics(model, split, (0.0, weight), classes=c) for c in ("validation", "test")}
    for c, m in rerank.items():
        if m:
            plain, fused = m[0.0], m[weight]
            say(f"     {c + ' classes':<18}: P@10 {plain['P@10']:.4f} -> {fused['P@10']:.4f}  mAP@200 "
                f"{plain['mAP@200']:.4f} -> {fused['mAP@200']:.4f}  (P@100 {plain['P@100']:.4f}, unchanged)")
    sketches = [str(s.path) for s in split.test_sketches]
    per_class: dict[str, int] = {}
    for i, s in enumerate(split.test_sketches):
        per_class.setdefault(s.label, i)
    picks = list(per_class.values())[:4]
    sheet = contact_sheets([(sketches[i], top[i][:8]) for i in picks], workdir / "contact_sheet.png")
    say(f"   contact sheet: {sheet}")
    say(f"done in {time.perf_counter() - t0:.0f} s. Next:")
    # The demo's store holds its one collection: serve and query find it without --collection.
    say(f"   dmwan serve --store {workdir / 'store'}   then open http://{DEFAULT_HOST}:{DEFAULT_PORT}/ and draw")
    say(f"   dmwan query {sketches[picks[0]]} --store {workdir / 'store'}")
    # The demo's model knows only drawn shapes: real photos want one that has seen photos.
    if shipped_available():
        say(f"   dmwan ingest ./my-photos --collection mine && dmwan query my_sketch.png   "
            f"(your photos, in the default store: the shipped sketch model {SHIPPED_MODEL})")
    else:
        say("   dmwan model create --preset efficientnet_lite0 -o effnet-lite0 && dmwan ingest ./my-photos "
            "--collection mine --model effnet-lite0   (your photos: ImageNet weights, offline)")
    say("   dmwan train --config procedural_tiny --workers 2   (README: real datasets, GPUs; `dmwan configs`)")
    if as_json:
        import json

        typer.echo(json.dumps({
            "store": str(workdir / "store"), "collection": COLLECTION, "model": summary["model"],
            "best_epoch": summary["best_epoch"], "selected_by": summary.get("selected_by"),
            "validation": summary.get("validation"), "last_epoch": summary.get("last"), "points": points,
            "through_qdrant": {k: through_qdrant[k] for k in ("mAP@all", "mAP@all plain", "P@100", "P@10",
                                                              "P@10 reranked", "queries")},
            "offline": {k: offline[k] for k in ("mAP@all", "mAP@all plain", "P@100")}, "contact_sheet": str(sheet),
            "rerank": {"default": rerank_on, "weight": weight,
                       **{c: {"off": m[0.0], "fused": m[weight]} for c, m in rerank.items() if m}},
            "seconds": round(time.perf_counter() - t0, 1),
        }, indent=2))
