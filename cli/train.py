"""`dmwan train`: Ray Train on this machine (or a cluster given by --address)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .app import app


@app.command()
def train(
    config: Path = typer.Option(..., "--config", help="training config: a shipped name (`dmwan configs`) or a YAML/JSON file"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Ray Train workers"),
    gpus: bool = typer.Option(False, "--gpus", help="one GPU per worker"),
    cpus_per_worker: Optional[float] = typer.Option(None, help="CPUs per worker (fractions share cores)"),
    epochs: Optional[int] = typer.Option(None, help="override the number of epochs"),
    name: Optional[str] = typer.Option(None, help="run name; the same name resumes the run"),
    storage_path: Optional[Path] = typer.Option(None, help="folder holding runs"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: a local cluster)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Train DMWAN with Ray Train; the best epoch becomes <run>/model for `dmwan ingest --model`."""
    from dmwan_qdrant.training.train import config_from_args
    from dmwan_qdrant.training.trainer import fit

    import argparse

    args = argparse.Namespace(
        config=str(config), workers=workers, gpus=gpus, cpus_per_worker=cpus_per_worker, epochs=epochs,
        name=name, storage_path=str(storage_path) if storage_path else None,
    )
    cfg = config_from_args(args)
    echo = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    summary = fit(cfg, address=address, printer=echo)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    best = summary["best"]
    typer.echo(
        f"best epoch {summary['best_epoch']}: mAP@all {best['mAP@all']:.4f}  P@100 {best['P@100']:.4f}  "
        f"({summary['epochs']} epochs, {summary['seconds']:.0f} s)"
    )
    typer.echo(f"model bundle: {summary['model']}\nplot: {summary['plot']}")
