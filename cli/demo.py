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

from .app import app

COLLECTION = "demo-unseen"


@app.command()
def demo(
    workdir: Path = typer.Option(Path("dmwan-demo"), help="folder for the data, the run and the store"),
    workers: int = typer.Option(1, help="Ray Train workers"),
    epochs: Optional[int] = typer.Option(None, help="override the config's epochs"),
) -> None:
    """Train, ingest and query end to end on the procedural benchmark (offline, CPU)."""
    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.eval.evaluate import evaluate_split
    from dmwan_qdrant.eval.through_store import evaluate_through_store
    from dmwan_qdrant.ingest import ingest
    from dmwan_qdrant.sheet import contact_sheets
    from dmwan_qdrant.store import open_store
    from dmwan_qdrant.training.config import TrainConfig
    from dmwan_qdrant.training.data import prepare_split
    from dmwan_qdrant.training.trainer import fit

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

    typer.echo("== 1/4 train: the tiny DMWAN model on the procedural benchmark, with Ray Train")
    typer.echo("   (unseen classes are never trained on; first epoch starts after Ray's ~30 s start-up)")
    summary = fit(cfg, printer=lambda line: typer.echo(f"   {line}"))
    typer.echo(f"   best epoch {summary['best_epoch']}, bundle {summary['model']}")

    typer.echo("== 2/4 ingest: unseen-class photos into the embedded Qdrant store")
    split = prepare_split(cfg)
    model = load_bundle(summary["model"])
    folders = sorted({str(s.path.parent) for s in split.test_photos})
    with open_store(path=workdir / "store") as store:
        if store.collection_exists(COLLECTION) and store.get_model_record(COLLECTION).get("fingerprint") != model.fingerprint:
            store.delete_collection(COLLECTION)  # the demo's own collection, filled by an older run
        report = ingest(folders, store, COLLECTION, model, label_from_folder=True)
        typer.echo(f"   {report.added} added, {report.unchanged} unchanged, {len(report.failed)} failed "
                   f"-> {store.count(COLLECTION)} points in '{COLLECTION}' ({workdir / 'store'})")

        typer.echo("== 3/4 query: every unseen-class sketch, through the `dmwan query` code path")
        through_qdrant = evaluate_through_store(store, COLLECTION, model, split)
    top = through_qdrant["top"]
    offline = evaluate_split(model, split)

    typer.echo("== 4/4 results on unseen classes (chance mAP@all is about "
               f"{1 / len(split.unseen_classes):.3f})")
    typer.echo(f"   through Qdrant : mAP@all {through_qdrant['mAP@all']:.4f}  P@100 {through_qdrant['P@100']:.4f}"
               f"   ({through_qdrant['queries']} sketch queries, full ranking)")
    typer.echo(f"   offline eval   : mAP@all {offline['mAP@all']:.4f}  P@100 {offline['P@100']:.4f}")
    gap = abs(through_qdrant["mAP@all"] - offline["mAP@all"])
    typer.echo(f"   {'they agree' if gap < 1e-3 else 'THEY DISAGREE'}: |difference| {gap:.5f} "
               "(Qdrant ranks the same embeddings the offline evaluation scores)")
    typer.echo(f"   token re-rank of the top 100 inside Qdrant: P@10 {through_qdrant['P@10']:.4f} -> "
               f"{through_qdrant['P@10 reranked']:.4f}")
    sketches = [str(s.path) for s in split.test_sketches]
    per_class: dict[str, int] = {}
    for i, s in enumerate(split.test_sketches):
        per_class.setdefault(s.label, i)
    picks = list(per_class.values())[:4]
    sheet = contact_sheets([(sketches[i], top[i][:8]) for i in picks], workdir / "contact_sheet.png")
    typer.echo(f"   contact sheet: {sheet}")
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s. Next:")
    typer.echo(f"   dmwan serve --collection {COLLECTION} --store {workdir / 'store'}   "
               "then open http://127.0.0.1:8000/ and draw")
    typer.echo(f"   dmwan query {sketches[picks[0]]} --collection {COLLECTION} --store {workdir / 'store'}")
    typer.echo(f"   dmwan ingest ./my-photos --collection mine --model {summary['model']}")
    typer.echo("   dmwan train --config procedural_tiny --workers 2   (README: real datasets, GPUs; `dmwan configs`)")
