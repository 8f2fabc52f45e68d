"""`dmwan train`: Ray Train on this machine (or a cluster given by --address)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import typer

from .options import MODEL_REFS
from .root import app


@app.command()
def train(
    config: Optional[str] = typer.Option(
        None, "--config", metavar="NAME|FILE", help="training config: a shipped name (`dmwan configs`) or a YAML/JSON file"),
    data: Optional[Path] = typer.Option(
        None, "--data", metavar="DIR", help="train on your own folder: photo/<class>/ and sketch/<class>/ images"),
    preset: Optional[str] = typer.Option(
        None, "--preset", metavar="NAME",
        help="the model to build: efficientnet_lite0 (the default with --data), tiny, vit_b16, ..."),
    pretrained: Optional[str] = typer.Option(
        None, "--pretrained", metavar="TAG|FILE", help="the preset's weights: an open_clip tag (openai), a file, or hub (timm)"),
    init: Optional[str] = typer.Option(
        None, "--init", metavar="BUNDLE|NAME", help=f"fine-tune this bundle ({MODEL_REFS}) instead of a preset"),
    unseen: Optional[int] = typer.Option(
        None, "--unseen", min=1, metavar="N", help="hold out N classes by seed (default: zeroshot/unseen_classes.txt)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Ray Train workers"),
    gpus: bool = typer.Option(False, "--gpus", help="one GPU per worker"),
    cpus_per_worker: Optional[float] = typer.Option(None, help="CPUs per worker (fractions share cores)"),
    epochs: Optional[int] = typer.Option(None, min=1, help="override the number of epochs"),
    name: Optional[str] = typer.Option(None, help="run name; the same name resumes the run"),
    storage_path: Optional[Path] = typer.Option(None, help="folder holding runs"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: a local cluster)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Train DMWAN with Ray Train; the epoch chosen on the validation classes becomes <run>/model for `dmwan ingest --model`.

    Either a config (`--config NAME|FILE`), or your own data: `--data DIR` alone (a recipe sized
    to the folder, from ImageNet weights that need no internet), `--data DIR --preset NAME
    [--pretrained TAG|FILE]`, or `--data DIR --init BUNDLE` to fine-tune a bundle.
    """
    from dmwan_qdrant.training.recipe import describe_recipe
    from dmwan_qdrant.training.train import config_from_args
    from dmwan_qdrant.training.trainer import fit

    args = argparse.Namespace(
        config=config, data=str(data) if data else None, preset=preset, pretrained=pretrained, init=init,
        unseen=unseen, workers=workers, gpus=gpus, cpus_per_worker=cpus_per_worker, epochs=epochs,
        name=name, storage_path=str(storage_path) if storage_path else None,
    )
    cfg = config_from_args(args)
    echo = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    echo(describe_recipe(cfg))
    summary = fit(cfg, address=address, printer=echo)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    best, val = summary["best"], summary.get("validation")
    chosen = f"validation mAP@all {val['mAP@all']:.4f}" if val else "the last epoch"
    typer.echo(
        f"selected epoch {summary['best_epoch']} (by {chosen}): unseen test mAP@all {best['mAP@all']:.4f}  "
        f"P@100 {best['P@100']:.4f}  ({_epochs(summary['epochs'], cfg.optim.epochs)}, {summary['seconds']:.0f} s)"
    )
    typer.echo(f"model bundle: {summary['model']}\nplot: {summary['plot']}")


def _epochs(ran: int, planned: int) -> str:
    """How many epochs ran, and whether early stopping cut the plan short."""
    return f"{ran} epochs" if ran >= planned else f"{ran} of {planned} epochs: stopped early"
