"""`dmwan configs`: the training configs that ship with the package, by name."""

from __future__ import annotations

import json

import typer

from .root import app


@app.command("configs")
def configs_command(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the shipped training configs (`dmwan train --config NAME`)."""
    from dmwan_qdrant.training.config import describe_config, shipped_configs

    shipped = shipped_configs()
    if as_json:
        typer.echo(json.dumps([{"name": n, "path": str(p), "about": describe_config(p)} for n, p in shipped.items()],
                              indent=2))
        return
    width = max(len(n) for n in shipped)
    for name, path in shipped.items():
        typer.echo(f"{name:<{width}}  {describe_config(path)}")
    typer.echo("\nuse one with `dmwan train --config NAME`, or copy it and pass the file's path", err=True)
