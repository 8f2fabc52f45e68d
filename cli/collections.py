"""`dmwan collections list | info | delete | optimize`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.errors import UsageError

from .app import app
from .options import api_key_option, open_cli_store, store_option, url_option

collections_app = typer.Typer(
    name="collections",
    help="List, inspect, delete and optimize collections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(collections_app, name="collections")


@collections_app.command("list")
def list_collections(
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List the collections with their point counts and models."""
    with open_cli_store(store, url, api_key) as st:
        infos = [st.collection_info(name) for name in st.list_collections()]
    if as_json:
        typer.echo(json.dumps([_info_dict(i) for i in infos], indent=2))
        return
    if not infos:
        typer.echo("no collections")
        return
    width = max(len(i.name) for i in infos)
    for i in infos:
        m = i.model
        typer.echo(f"{i.name:<{width}}  {i.points:>9} points  {m.get('preset', '?')} {m.get('fingerprint', '?')}")


@collections_app.command("info")
def info(
    name: str = typer.Argument(..., help="collection name"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Point count, model record, vector sizes and index state of a collection."""
    with open_cli_store(store, url, api_key) as st:
        i = st.collection_info(name)
    if as_json:
        typer.echo(json.dumps(_info_dict(i), indent=2))
        return
    typer.echo(f"collection   {i.name} ({i.backend})")
    typer.echo(f"points       {i.points}")
    typer.echo(f"vectors      global {i.dim} (cosine), tokens {i.token_dim} per token (MaxSim)")
    seg = f", {i.segments} segments" if i.segments is not None else ""
    typer.echo(f"index        {i.index_state} ({i.indexed_vectors} vectors indexed{seg}), status {i.status}")
    typer.echo("model")
    width = max((len(key) for key in i.model), default=0) + 2
    for key, value in i.model.items():
        typer.echo(f"  {key:<{width}}{value}")


@collections_app.command("delete")
def delete(
    name: str = typer.Argument(..., help="collection name"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
) -> None:
    """Delete a collection and all its points (the photo files are not touched)."""
    with open_cli_store(store, url, api_key) as st:
        points = st.count(name)  # also raises CollectionNotFoundError before asking
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to delete collection '{name}' without --yes (no terminal to ask)")
            if not typer.confirm(f"delete collection '{name}' and its {points} points?"):
                typer.echo("kept", err=True)
                raise typer.Exit(1)
        st.delete_collection(name)
    typer.echo(f"deleted collection '{name}' ({points} points)")


@collections_app.command("optimize")
def optimize(
    name: str = typer.Argument(..., help="collection name"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
) -> None:
    """Build the HNSW index and merge segments (worth it from a few thousand points)."""
    import time

    with open_cli_store(store, url, api_key) as st:
        t0 = time.perf_counter()
        st.optimize(name)
        i = st.collection_info(name)
    typer.echo(
        f"optimized '{name}' in {time.perf_counter() - t0:.1f} s: {i.points} points, index {i.index_state}"
    )


def _info_dict(i: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(i)
