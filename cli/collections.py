"""`dmwan collections list | info | create | delete | optimize | check | recover` (`reindex`: `dmwan_qdrant.cli.reindex`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.errors import CollectionNotFoundError, StoreServedError, UsageError
from dmwan_qdrant.settings import ENV_DMWAN_API_KEY
from dmwan_qdrant.store.index import TOKEN_STORAGE, IndexSettings

from .options import MODEL_REFS, api_key_option, open_cli_store, store_option, url_option
from .root import app

collections_app = typer.Typer(
    name="collections",
    help="List, inspect, create, check, repair, recover, reindex, delete and optimize collections.",
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
    """List the collections with their point counts and models (and any damaged ones)."""
    try:
        with open_cli_store(store, url, api_key, read_only=True) as st:
            infos = [st.collection_info(name) for name in st.list_collections()]
            damaged = st.damaged_collections()
    except StoreServedError as served:
        infos, damaged = _served_collections(served), {}
    if as_json:
        out = [_info_dict(i) for i in infos] + [{"name": n, "damaged": why} for n, why in damaged.items()]
        typer.echo(json.dumps(out, indent=2))
        return
    if not infos and not damaged:
        typer.echo("no collections")
        return
    width = max(len(n) for n in [i.name for i in infos] + list(damaged))
    for i in infos:
        m = i.model
        typer.echo(f"{i.name:<{width}}  {i.points:>9} points  {m.get('preset', '?')} {m.get('fingerprint', '?')}")
    for n, why in damaged.items():
        typer.echo(f"{n:<{width}}  DAMAGED: {why}")


@collections_app.command("info")
def info(
    name: str = typer.Argument(..., help="collection name"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Point count, model record, vector sizes and index state of a collection."""
    labels: dict[str, int] | None = None
    try:
        with open_cli_store(store, url, api_key, read_only=True) as st:
            i = st.collection_info(name)
            labels = _label_counts(st, name)
    except StoreServedError as served:
        found = [c for c in _served_collections(served) if c.name == name]
        if not found:
            raise CollectionNotFoundError(f"no collection named '{name}' is served by `dmwan serve` at {served.url} "
                                          "(it holds the store: stop it to see the others)") from None
        i = found[0]
    i.model.update(_card_summary(i.model))
    if as_json:
        typer.echo(json.dumps({**_info_dict(i), **({"labels": labels} if labels is not None else {})}, indent=2))
        return
    typer.echo(f"collection   {i.name} ({i.backend})")
    typer.echo(f"points       {i.points}")
    typer.echo(f"vectors      global {i.dim} (cosine), tokens {i.token_dim} per token (MaxSim)")
    seg = f", {i.segments} segment{'' if i.segments == 1 else 's'}" if i.segments is not None else ""
    typer.echo(f"index        {i.index_state} ({i.indexed_vectors} vectors indexed{seg}), status {i.status}")
    if i.index is not None:
        x = i.index
        rescore = (", re-rank rescored with them" if x.rescore else ", re-rank by int8 alone") if x.tokens == "int8" else ""
        typer.echo(f"settings     HNSW m={x.hnsw_m} ef_construct={x.ef_construct}, search ef={x.hnsw_ef}; "
                   f"tokens {_TOKEN_WORDS[x.tokens]}{rescore}")
    typer.echo("model")
    width = max((len(key) for key in i.model), default=0) + 2
    for key, value in i.model.items():
        typer.echo(f"  {key:<{width}}{value}")
    if labels:
        typer.echo(f"labels       {len(labels)}: " + ", ".join(f"{k} {n}" for k, n in labels.items()))
    elif labels is not None:
        typer.echo("labels       none (ingest with --label-from-folder to label by folder)")


_TOKEN_WORDS = {
    "int8": "int8 (scalar quantization in memory), float16 originals on disk",
    "float16": "float16",
    "float32": "float32",
}


INDEX_DEFAULTS = IndexSettings().to_dict()
"""The index options' defaults (`store.index` loads nothing else of the store: `--help` stays fast)."""
TOKEN_CHOICES = TOKEN_STORAGE
"""What ``--tokens`` takes."""


@collections_app.command("create")
def create(
    name: str = typer.Argument(..., help="collection name"),
    model: str = typer.Option(..., "--model", "-m", metavar="BUNDLE|NAME", help=f"the model bundle that will fill it: {MODEL_REFS}"),
    hnsw_m: int = typer.Option(INDEX_DEFAULTS["hnsw_m"], "--hnsw-m", help="edges per node of the HNSW graph"),
    ef_construct: int = typer.Option(INDEX_DEFAULTS["ef_construct"], "--ef-construct",
                                     help="candidates while building the graph"),
    ef: int = typer.Option(INDEX_DEFAULTS["hnsw_ef"], "--ef", help="candidates while searching it (a query's --ef overrides)"),
    tokens: str = typer.Option(INDEX_DEFAULTS["tokens"], "--tokens", help="token storage: " + ", ".join(TOKEN_CHOICES)),
    rescore: bool = typer.Option(INDEX_DEFAULTS["rescore"], "--rescore/--no-rescore",
                                 help="int8 tokens: re-score the re-rank with the originals"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Create an empty collection with chosen index settings (ingest creates one with the
    defaults when it is missing)."""
    from dmwan_qdrant.encoder import load_bundle, model_record
    from dmwan_qdrant.store import create_collection

    index = IndexSettings(hnsw_m=hnsw_m, ef_construct=ef_construct, hnsw_ef=ef, tokens=tokens, rescore=rescore)
    record = model_record(load_bundle(model))
    with open_cli_store(store, url, api_key, create=True) as st:
        create_collection(st, name, record, index)
        i = st.collection_info(name)
    if as_json:
        typer.echo(json.dumps(_info_dict(i), indent=2))
        return
    typer.echo(f"created '{name}': HNSW m={hnsw_m} ef_construct={ef_construct} ef={ef}, tokens {tokens}"
               + (f", rescore {'on' if rescore else 'off'}" if tokens == "int8" else ""))


def _card_summary(record: dict[str, Any]) -> dict[str, str]:
    """What the model card of a collection's bundle says, for a record that does not say it
    (collections filled before records carried it); empty when the bundle cannot be read."""
    if "trained_on" in record or not record.get("bundle"):
        return {}
    from dmwan_qdrant.errors import CheckpointError
    from dmwan_qdrant.model.card import card_of, card_summary
    from dmwan_qdrant.model.checkpoint import read_bundle_record

    try:
        return card_summary(card_of(read_bundle_record(record["bundle"])))
    except CheckpointError:  # a bundle gone or damaged: the record alone is what there is to say
        return {}


def _label_counts(st: Any, name: str) -> dict[str, int]:
    """Points per label, most common first (points without a label are not counted)."""
    from collections import Counter

    counts = Counter(str(p["label"]) for _, p in st.scroll_payloads(name, ["label"]) if p.get("label") is not None)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@collections_app.command("delete")
def delete(
    name: str = typer.Argument(..., help="collection name"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
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
    if as_json:
        typer.echo(json.dumps({"deleted": name, "points": points}))
        return
    typer.echo(f"deleted collection '{name}' ({points} points)")


@collections_app.command("optimize")
def optimize(
    name: str = typer.Argument(..., help="collection name"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Build the HNSW index and merge segments (worth it from a few thousand points).

    On the embedded store it also moves the payload indexes of a collection made before they
    were memory-mapped, so that it opens in a fraction of the time.
    """
    import time

    with open_cli_store(store, url, api_key) as st:
        t0 = time.perf_counter()
        st.optimize(name)
        i = st.collection_info(name)
    if as_json:
        typer.echo(json.dumps({**_info_dict(i), "seconds": round(time.perf_counter() - t0, 3)}, indent=2))
        return
    typer.echo(
        f"optimized '{name}' in {time.perf_counter() - t0:.1f} s: {i.points} points, index {i.index_state}"
    )


EXIT_DAMAGED = 12
"""Exit code of `check` when the collection is damaged (the same as StoreDamagedError's)."""


@collections_app.command("check")
def check(
    name: str = typer.Argument(..., help="collection name"),
    repair: bool = typer.Option(False, "--repair", help="rewrite what is damaged, from the files still on disk"),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="BUNDLE|NAME",
                                        help=f"model bundle for --repair: {MODEL_REFS} (default: the recorded one)"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Read every point back: counts, finite unit-norm vectors, payloads, the model record.

    Exit code 0 when intact, 12 when damaged. With --repair, damaged points are embedded again
    from their files and lost ones restored by re-ingesting the folders the collection came from.
    """
    from dmwan_qdrant.check import check_collection, repair_collection

    with open_cli_store(store, url, api_key, read_only=not repair) as st:
        report = check_collection(st, name)
        fixed = None
        if repair and not report.ok:
            from dmwan_qdrant.encoder import collection_bundle, load_bundle

            net = load_bundle(collection_bundle(name, st.get_model_record(name), model))  # the repair checks it
            fixed = repair_collection(st, name, net, report)
            after = check_collection(st, name)
    if as_json:
        out: dict[str, Any] = report.to_dict()
        if fixed is not None:
            out["repair"] = {**vars(fixed), "lost": [{"id": i, "why": w} for i, w in fixed.lost]}
            out["after"] = after.to_dict()
        typer.echo(json.dumps(out, indent=2))
    else:
        _print_check(report)
        if fixed is not None:
            typer.echo(
                f"repaired '{name}': {fixed.kept} points kept, {fixed.reembedded} embedded again, "
                f"{fixed.restored} restored from the ingested folders, {len(fixed.lost)} lost"
            )
            for pid, why in fixed.lost[:10]:
                typer.echo(f"  lost: {pid} {why}".rstrip())
            _print_check(after)
    final = after if fixed is not None else report
    if not final.ok:
        raise typer.Exit(EXIT_DAMAGED)


def _print_check(r: Any) -> None:
    expected = f", {r.expected} left by the last ingest" if r.expected is not None else ""
    state = "intact" if r.ok else "DAMAGED"
    typer.echo(f"{r.collection}: {state}: {r.points} points{expected}, {len(r.damaged)} damaged")
    for line in r.problems:
        typer.echo(f"  {line}")
    for pid, why in r.damaged[:10]:
        typer.echo(f"  {pid}: {why}")
    if len(r.damaged) > 10:
        typer.echo(f"  ... and {len(r.damaged) - 10} more (see --json)")
    if not r.ok:
        typer.echo(f"  run `dmwan collections check {r.collection} --repair` to rewrite it from the files")


@collections_app.command("recover")
def recover(
    name: str = typer.Argument(..., help="collection folder that lost its manifest"),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", metavar="BUNDLE|NAME",
        help=f"the bundle that filled it, where the shard keeps no copy of the manifest: {MODEL_REFS}"
    ),
    store: Optional[Path] = store_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Rebuild the manifest of an embedded collection from its shard (nothing else is touched)."""
    from dmwan_qdrant.store import EdgeStore

    with open_cli_store(store, None, None) as st:
        if not isinstance(st, EdgeStore):
            raise UsageError("recover is for the embedded store (--store); a server keeps its own records")
        record, verify = None, None
        if model is not None:
            from dmwan_qdrant.check import verify_model
            from dmwan_qdrant.encoder import load_bundle, model_record

            net = load_bundle(model)
            record = model_record(net)
            verify = lambda: verify_model(st, name, net)  # noqa: E731
        manifest = st.recover_collection(name, record, verify)
        points = st.count(name)
    if as_json:
        typer.echo(json.dumps({"recovered": name, "points": points, "dim": manifest["dim"],
                               "token_dim": manifest["token_dim"], "model": manifest["model"]}, indent=2))
        return
    typer.echo(
        f"recovered '{name}': {points} points, vectors {manifest['dim']}/{manifest['token_dim']}, "
        f"model {manifest['model'].get('preset', '?')} {manifest['model'].get('fingerprint', '?')}"
    )


def _info_dict(i: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(i)


def _served_collections(served: StoreServedError) -> list[Any]:
    """The collections of a store held by `dmwan serve`, as the server describes them."""
    import os

    from dmwan_qdrant.server.client import collections_through_server

    typer.echo(f"note: the store is held by `dmwan serve` at {served.url}; showing the collections it serves", err=True)
    return collections_through_server(served.url, os.environ.get(ENV_DMWAN_API_KEY) or None)
