"""`dmwan query`: search a collection with sketches (or a text) and print the ranked photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.errors import StoreServedError, UsageError

from .app import app
from .options import api_key_option, device_option, open_cli_store, store_option, url_option


@app.command("query")
def query_command(
    sketches: Optional[list[Path]] = typer.Argument(
        None, metavar="SKETCH", help="sketch image files (embedded in one batch)"
    ),
    collection: str = typer.Option(..., "--collection", "-c", help="collection to search"),
    k: int = typer.Option(10, "-k", "--top-k", min=1, help="results per query"),
    filters: Optional[list[str]] = typer.Option(
        None, "--filter", help="exact payload match key=value, e.g. label=shoe (repeat to AND)"
    ),
    no_rerank: bool = typer.Option(False, "--no-rerank", help="rank by the global embedding only"),
    prefetch: int = typer.Option(100, "--prefetch", min=1, help="candidates re-ranked by local tokens"),
    text: Optional[str] = typer.Option(None, "--text", help='search by text instead, e.g. "a red shoe"'),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    as_jsonl: bool = typer.Option(False, "--jsonl", help="print JSON Lines: one object per query, in the order given"),
    paths_only: bool = typer.Option(
        False, "--paths", help="print only the photo paths, one a line (a blank line between queries)"
    ),
    sheet: Optional[Path] = typer.Option(None, "--sheet", help="also write a contact sheet PNG here"),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="BUNDLE|NAME",
                                        help="model bundle, a folder or hf-hub:ORG/NAME (default: the collection's)"),
    device: Optional[str] = device_option(),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
) -> None:
    """Find the photos that look like SKETCHES (or match --text), best first.

    Scores are cosines of global embeddings, or MaxSim sums over local tokens when re-ranked.
    """
    sketches = sketches or []
    if not sketches and text is None:
        raise UsageError("give one or more sketch files, or --text")
    if sketches and text is not None:
        raise UsageError("give sketch files or --text, not both")
    if sum((as_json, as_jsonl, paths_only)) > 1:
        raise UsageError("--json, --jsonl and --paths are exclusive")

    queries: list[Any] = [text] if text is not None else [str(s) for s in sketches]
    # The store first (numpy and qdrant-edge only): "store in use" must not wait for torch.
    try:
        st = open_cli_store(store, url, api_key, read_only=True)
    except StoreServedError as served:
        results = _through_server(served, collection, sketches, text, k, filters or [], not no_rerank, prefetch, model)
    else:
        with st:
            from dmwan_qdrant.search import load_collection_model, parse_filters, search_sketches, search_text

            flt = parse_filters(filters or []) or None
            net = load_collection_model(st, collection, model, device)
            if text is not None:
                results = search_text(st, collection, net, text, k=k, filter=flt)
            else:
                results = search_sketches(st, collection, net, sketches, k=k, filter=flt, rerank=not no_rerank,
                                          prefetch=prefetch)

    if sheet is not None:
        from dmwan_qdrant.sheet import contact_sheets

        try:
            contact_sheets(list(zip(queries, results)), sheet, is_text=text is not None)
        except (OSError, ValueError) as e:  # unwritable folder, unknown image suffix
            raise UsageError(f"cannot write the contact sheet {sheet}: {e}") from None
    if paths_only:
        for i, res in enumerate(results):
            if i:
                typer.echo("")
            for r in res:
                typer.echo(r.path)
    elif as_jsonl:
        for q, res in zip(queries, results):
            typer.echo(json.dumps({"query": q, "collection": collection, "results": [r.to_dict() for r in res]}))
    elif as_json:
        from dmwan_qdrant.store.factory import store_choice

        out = {
            "store": store_choice(url, store)[1],
            "collection": collection,
            "mode": "text" if text is not None else "sketch",
            "rerank": text is None and not no_rerank,
            "queries": [{"query": q, "results": [r.to_dict() for r in res]} for q, res in zip(queries, results)],
        }
        if sheet is not None:
            out["sheet"] = str(sheet)
        typer.echo(json.dumps(out, indent=2))
    else:
        for i, (q, res) in enumerate(zip(queries, results)):
            if i:
                typer.echo("")
            _print_table(q, res, text is not None)
        if sheet is not None:
            typer.echo(f"\ncontact sheet: {sheet}")


def _print_table(query: str, results: list[Any], is_text: bool) -> None:
    typer.echo(f'query: "{query}"' if is_text else f"query: {query}")
    if not results:
        typer.echo("  (no results)")
        return
    labels = [r.label or "-" for r in results]
    lw = max(5, max(len(s) for s in labels))
    typer.echo(f"{'rank':>4}  {'score':>8}  {'label':<{lw}}  path")
    for r, label in zip(results, labels):
        typer.echo(f"{r.rank:>4}  {r.score:>8.4f}  {label:<{lw}}  {r.path}")


def _through_server(served: StoreServedError, collection: str, sketches: list[Path], text: Optional[str], k: int,
                    filters: list[str], rerank: bool, prefetch: int, model: Optional[str]) -> list[Any]:
    """The search answered by the `dmwan serve` that holds the store (same results, no torch)."""
    import os

    from dmwan_qdrant.server.client import search_through_server

    if model is not None:
        raise UsageError(f"the store is served by `dmwan serve` (pid {served.pid}) at {served.url}, which searches "
                         "with the collection's own model: leave out --model, or stop the server")
    key = os.environ.get("DMWAN_API_KEY") or None
    if served.auth and key is None:
        raise UsageError(f"the store is served by `dmwan serve` (pid {served.pid}) at {served.url}, which requires "
                         "an API key: set $DMWAN_API_KEY")
    typer.echo(f"note: searching through `dmwan serve` at {served.url} (it holds the store)", err=True)
    return search_through_server(served.url, collection, sketches, text, k, filters, rerank, prefetch, key)
