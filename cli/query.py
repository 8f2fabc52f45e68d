"""`dmwan query`: search a collection with sketches (or a text) and print the ranked photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from dmwan_qdrant.errors import StoreServedError, UsageError
from dmwan_qdrant.settings import ENV_DMWAN_API_KEY

from .options import (DEFAULT_COLLECTION_HELP, MODEL_REFS, api_key_option, default_collection, device_option,
                      open_cli_store, runtime_option, store_option, url_option, warn_if_toy)
from .root import app, skip_teardown

if TYPE_CHECKING:
    from dmwan_qdrant.search.request import SearchRequest


@app.command("query")
def query_command(
    sketches: Optional[list[str]] = typer.Argument(
        None, metavar="SKETCH...",
        help="sketches: image files, folders of them, - (standard input) or http(s) URLs (embedded in one batch)",
    ),
    collection: Optional[str] = typer.Option(None, "--collection", "-c",
                                             help=f"collection to search ({DEFAULT_COLLECTION_HELP})"),
    k: int = typer.Option(10, "-k", "--top-k", min=1, help="results per query"),
    filters: Optional[list[str]] = typer.Option(
        None, "--filter", metavar="COND",
        help="payload condition, repeat to AND: label=shoe, label=shoe,boot (any of), width>=640, path^=/photos/",
    ),
    under: Optional[Path] = typer.Option(None, "--under", metavar="DIR", help="only photos under this folder"),
    rerank: Optional[bool] = typer.Option(
        None, "--rerank/--no-rerank",
        help="re-rank the top --prefetch by the fused global and local-token score (default: as the collection's "
             "model chose on its validation classes; `dmwan model info` says)"),
    prefetch: int = typer.Option(100, "--prefetch", min=1, help="candidates re-ranked by local tokens"),
    ef: Optional[int] = typer.Option(
        None, "--ef", metavar="N",
        help="HNSW search candidates: more finds more of the exact top k, slower (default: the collection's)",
    ),
    text: Optional[str] = typer.Option(None, "--text", metavar="TEXT", help='search by text instead, e.g. "a red shoe"'),
    photos: Optional[list[str]] = typer.Option(
        None, "--photo", metavar="PHOTO", help="more like this photo (embedded as a photo; a file, folder, - or URL)"),
    like: Optional[list[str]] = typer.Option(
        None, "--like", metavar="ID|FILE", help="more like this stored point (its id, or the photo file it came from)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    as_jsonl: bool = typer.Option(False, "--jsonl", help="print JSON Lines: one object per query, in the order given"),
    paths_only: bool = typer.Option(
        False, "--paths", help="print only the photo paths, one a line (a blank line between queries)"
    ),
    sheet: Optional[Path] = typer.Option(None, "--sheet", metavar="FILE",
                                         help="also write a contact sheet (PNG, JPEG, WebP: by the suffix)"),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="BUNDLE|NAME",
                                        help=f"model bundle: {MODEL_REFS} (default: the collection's)"),
    device: Optional[str] = device_option(),
    runtime: str = runtime_option(),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
) -> None:
    """Find the photos that look like SKETCH... (or match --text, or are like --photo / --like),
    best first.

    Without --collection it searches the one $DMWAN_COLLECTION names, else the store's only
    collection (or the only one the `dmwan serve` holding the store serves).

    Scores are cosines of global embeddings, or when re-ranked the fused global and local-token
    score, on the same scale (-1 to 1). A bundle trained with validation classes re-ranks by
    default only if that helped on them; --rerank / --no-rerank decide for one query.
    """
    kinds = [name for name, given in (("sketches", sketches), ("--text", text is not None), ("--photo", photos),
                                      ("--like", like)) if given]
    if not kinds:
        raise UsageError("give one or more sketches (files, folders, - or URLs), or --text, --photo or --like")
    if len(kinds) > 1:
        raise UsageError(f"give one kind of query at a time, not {' and '.join(kinds)}")
    if sum((as_json, as_jsonl, paths_only)) > 1:
        raise UsageError("--json, --jsonl and --paths are exclusive")
    if ef is not None and ef < 1:  # here, not by Click: one line, before any store or model is opened
        raise UsageError(f"--ef must be a positive integer, got {ef}")
    filters = list(filters or [])
    if under is not None:
        import os

        filters.append(f"path^={under.expanduser().resolve()}{os.sep}")
    mode = {"sketches": "sketch", "--text": "text", "--photo": "photo", "--like": "like"}[kinds[0]]
    # The images first: a missing file fails before any store or model is opened.
    from dmwan_qdrant.point_ids import resolve_point_id
    from dmwan_qdrant.search.queries import read_query_sources

    sources = read_query_sources(sketches or photos or [])
    ids = [resolve_point_id(spec) for spec in like or []]  # a photo file is hashed once, here
    images: list[Any] = []
    like_paths: dict[str, Any] = {}
    queries: list[Any] = [text] if text is not None else (list(like) if like else [s.name for s in sources])
    # The store first (numpy and qdrant-edge only): "store in use" must not wait for torch.
    try:
        st = open_cli_store(store, url, api_key, read_only=True)
    except StoreServedError as served:
        if collection is None:
            collection = default_collection(served.collections, f"the `dmwan serve` at {served.url}")
        results, reranked = _through_server(served, collection, sources, text, k, filters, rerank, prefetch, model,
                                            bool(photos), ids, ef)
    else:
        with st:
            from dmwan_qdrant.search.filters import parse_filters

            if collection is None:
                collection = default_collection(st.list_collections())
            from dmwan_qdrant.search.request import SearchRequest

            images = [s.decode() for s in sources]
            request = SearchRequest(collection, [] if photos else images, text, k, parse_filters(filters) or None,
                                    rerank, prefetch, images if photos else [], ids, ef)
            results, reranked = _search_here(st, request, model, device, runtime)
            if ids and sheet is not None:  # the stored photos the queries stand for
                like_paths = dict(zip(like or [], (p.get("path") for p in st.retrieve(collection, ids))))

    if sheet is not None:
        from dmwan_qdrant.sheet import contact_sheets

        try:
            shown: list[Any] = list(queries)
            if sources:
                shown = [(src.name, im) for src, im in zip(sources, images or [src.decode() for src in sources])]
            elif like:
                shown = [(q, like_paths.get(q) or q) for q in queries]
            contact_sheets(list(zip(shown, results)), sheet, is_text=text is not None)
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
            "mode": mode,
            "rerank": text is None and reranked,
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
    skip_teardown()  # the store is closed, the sheet written: nothing is left but freeing memory


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


def _search_here(st: Any, request: SearchRequest, model: Optional[str], device: Optional[str],
                 runtime: str = "auto") -> tuple[list[Any], bool]:
    """``request`` answered on the open store ``st`` by the collection's
    encoder, or the bundle ``model``: `run_search`, as the server answers it. Returns the results
    and whether they were re-ranked (``request.rerank``, or None: the model's choice)."""
    from dmwan_qdrant.encoder import collection_bundle, load_bundle
    from dmwan_qdrant.search.request import run_search
    from dmwan_qdrant.search.reranking import resolve_rerank

    bundle = collection_bundle(request.collection, st.get_model_record(request.collection), model)
    net = load_bundle(bundle, device, runtime)  # the search checks it against the collection
    request.rerank = request.mode != "text" and resolve_rerank(request.rerank, net)[0]
    results = run_search(st, net, request)
    warn_if_toy(net)
    return results, request.rerank


def _through_server(served: StoreServedError, collection: str, sources: list[Any], text: Optional[str], k: int,
                    filters: list[str], rerank: Optional[bool], prefetch: int, model: Optional[str],
                    as_photos: bool, ids: list[str], ef: Optional[int] = None) -> tuple[list[Any], bool]:
    """The search answered by the `dmwan serve` that holds the store (same results, no torch)."""
    import os

    from dmwan_qdrant.server.client import search_through_server

    if model is not None:
        raise UsageError(f"the store is served by `dmwan serve` (pid {served.pid}) at {served.url}, which searches "
                         "with the collection's own model: leave out --model, or stop the server")
    key = os.environ.get(ENV_DMWAN_API_KEY) or None
    if served.auth and key is None:
        raise UsageError(f"the store is served by `dmwan serve` (pid {served.pid}) at {served.url}, which requires "
                         f"an API key: set ${ENV_DMWAN_API_KEY}")
    typer.echo(f"note: searching through `dmwan serve` at {served.url} (it holds the store)", err=True)
    answer = search_through_server(served.url, collection, [] if as_photos else sources, text, k, filters, rerank,
                                   prefetch, key, photos=sources if as_photos else [], like=ids, ef=ef)
    return list(answer), answer.rerank
