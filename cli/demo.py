"""`dmwan demo`: the whole product offline, on the procedural benchmark, in a few minutes.

Generate the benchmark, train the tiny model with Ray Train, ingest the unseen-class photos into
the embedded Qdrant store, query with the unseen-class sketches through the code path of
`dmwan query`, and score the rankings Qdrant returned against the offline evaluation.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer

from .app import app

COLLECTION = "demo-unseen"


def ranking_metrics(query_labels: list[str], ranked_labels: list[list[str]], gallery_counts: dict[str, int]) -> dict:
    """mAP@all and P@100 of full rankings given as label lists (as Qdrant returned them)."""
    from dmwan_qdrant.eval.metrics import average_precision, precision_at_k

    depth = max(len(r) for r in ranked_labels)
    relevant = torch.zeros(len(ranked_labels), depth, dtype=torch.bool)
    for i, (q, ranked) in enumerate(zip(query_labels, ranked_labels)):
        relevant[i, : len(ranked)] = torch.tensor([label == q for label in ranked])
    scores = -torch.arange(depth, dtype=torch.float32).expand(len(ranked_labels), depth)
    ap = average_precision(scores, relevant)
    # every relevant photo is in the ranking (k = gallery size), so this is AP over the gallery
    assert all(int(relevant[i].sum()) == gallery_counts[q] for i, q in enumerate(query_labels))
    return {"mAP@all": float(ap.mean()), "P@100": float(precision_at_k(scores, relevant, min(100, depth)).mean())}


@app.command()
def demo(
    workdir: Path = typer.Option(Path("dmwan-demo"), help="folder for the data, the run and the store"),
    workers: int = typer.Option(1, help="Ray Train workers"),
    epochs: Optional[int] = typer.Option(None, help="override the config's epochs"),
) -> None:
    """Train, ingest and query end to end on the procedural benchmark (offline, CPU)."""
    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.eval.evaluate import evaluate_split
    from dmwan_qdrant.ingest import ingest
    from dmwan_qdrant.search import search_sketches
    from dmwan_qdrant.sheet import contact_sheets
    from dmwan_qdrant.store import open_store
    from dmwan_qdrant.training.config import TrainConfig
    from dmwan_qdrant.training.data import prepare_split
    from dmwan_qdrant.training.trainer import fit

    t0 = time.perf_counter()
    workdir = workdir.resolve()
    config_file = resources.files("dmwan_qdrant.training") / "configs" / "procedural_tiny.yaml"
    overrides = {"storage_path": str(workdir / "runs"), "data.root": str(workdir / "data"), "scaling.workers": workers}
    if workers > 1:
        overrides["scaling.cpus_per_worker"] = 0.5
    if epochs:
        overrides["optim.epochs"] = epochs
    cfg = TrainConfig.from_file(Path(str(config_file))).with_overrides(**overrides)

    typer.echo("== 1/4 train: the tiny DMWAN model on the procedural benchmark, with Ray Train")
    typer.echo(f"   (unseen classes are never trained on; first epoch starts after Ray's ~30 s start-up)")
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
        gallery = store.count(COLLECTION)
        sketches = [str(s.path) for s in split.test_sketches]
        labels = [s.label for s in split.test_sketches]
        ranked, top = [], []
        for start in range(0, len(sketches), 128):
            chunk = sketches[start : start + 128]
            ranked += search_sketches(store, COLLECTION, model, chunk, k=gallery, rerank=False)
            top += search_sketches(store, COLLECTION, model, chunk, k=100, rerank=True)
    counts = {c: sum(1 for s in split.test_photos if s.label == c) for c in split.unseen_classes}
    through_qdrant = ranking_metrics(labels, [[r.label for r in rs] for rs in ranked], counts)
    reranked_p100 = float(np.mean([sum(r.label == q for r in rs) / 100 for q, rs in zip(labels, top)]))
    offline = evaluate_split(model, split)

    typer.echo("== 4/4 results on unseen classes (chance mAP@all is about "
               f"{1 / len(split.unseen_classes):.3f})")
    typer.echo(f"   through Qdrant : mAP@all {through_qdrant['mAP@all']:.4f}  P@100 {through_qdrant['P@100']:.4f}")
    typer.echo(f"   offline eval   : mAP@all {offline['mAP@all']:.4f}  P@100 {offline['P@100']:.4f}")
    typer.echo(f"   with token re-rank of the top 100 inside Qdrant: P@100 {reranked_p100:.4f}")
    per_class: dict[str, int] = {}
    for i, s in enumerate(split.test_sketches):
        per_class.setdefault(s.label, i)
    picks = list(per_class.values())[:4]
    sheet = contact_sheets([(sketches[i], top[i][:8]) for i in picks], workdir / "contact_sheet.png")
    typer.echo(f"   contact sheet: {sheet}")
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s. Next:")
    typer.echo(f"   dmwan query {sketches[picks[0]]} --collection {COLLECTION} --store {workdir / 'store'}")
    typer.echo(f"   dmwan ingest ./my-photos --collection mine --model {summary['model']}")
    typer.echo("   dmwan train --config training/configs/procedural_tiny.yaml --workers 2   (README: real datasets, GPUs)")
