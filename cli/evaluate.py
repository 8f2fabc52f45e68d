"""`dmwan eval`: the protocol's table for a model bundle on a benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .options import MODEL_REFS, device_option
from .root import app


@app.command("eval")
def evaluate(
    model: str = typer.Option(..., "--model", "-m", metavar="BUNDLE|NAME", help=f"model bundle: {MODEL_REFS}"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="folder (your own), procedural, sketchy, tuberlin or quickdraw"),
    root: Path = typer.Option(..., "--root", help="dataset root folder"),
    split: Optional[str] = typer.Option(None, help="benchmark split (Sketchy: 1 or 2)"),
    unseen: int = typer.Option(0, "--unseen", min=0, metavar="N",
                               help="folder data: score on N classes drawn by --seed (default: zeroshot/unseen_classes.txt)"),
    seed: int = typer.Option(0, "--seed", help="the draw of --unseen (the training run's seed gives its split)"),
    batch_size: int = typer.Option(128, help="images per forward pass"),
    workers: int = typer.Option(0, "--decode-workers", "--workers", min=0, help="image decoding processes"),
    per_class: bool = typer.Option(False, "--per-class", help="also report AP per unseen class"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the metrics as JSON here"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
    device: Optional[str] = device_option(),
) -> None:
    """Score a model on the unseen classes: mAP@all, P@100, mAP@200, P@200, and plain AP (x100)."""
    from dmwan_qdrant.data import load_benchmark
    from dmwan_qdrant.eval.evaluate import evaluate_split
    from dmwan_qdrant.eval.metrics import METRICS
    from dmwan_qdrant.encoder import load_bundle

    net = load_bundle(model, device, runtime="torch")
    bench = load_benchmark(dataset, root, split, unseen=unseen, seed=seed)
    metrics = evaluate_split(net, bench, batch_size=batch_size, num_workers=workers, per_class=per_class)
    metrics.update(model=str(model), fingerprint=net.fingerprint, dataset=dataset, split=split)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2))
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    typer.echo(f"{dataset}{' split ' + split if split else ''}: {metrics['queries']} sketches x {metrics['gallery']} photos")
    typer.echo("| mAP@all | P@100 | mAP@200 | P@200 | mAP@all plain | mAP@200 plain |\n|---|---|---|---|---|---|")
    typer.echo("| " + " | ".join(f"{100 * metrics[k]:.1f}" for k in METRICS) + " |")
    typer.echo("(mAP: interpolated AP, the published tables' convention; plain: non-interpolated)")
    if per_class:
        for name, ap in sorted(metrics["per_class_ap"].items(), key=lambda kv: kv[1]):
            typer.echo(f"  {name:<24} AP {100 * ap:5.1f}")
    if out:
        typer.echo(f"wrote {out}")

