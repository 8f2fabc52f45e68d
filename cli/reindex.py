"""`dmwan collections reindex`: a collection embedded again by another model and swapped in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.errors import StoreServedError

from .collections import collections_app
from .options import (MODEL_REFS, api_key_option, device_option, open_cli_store, runtime_option, store_option,
                      url_option, warn_if_toy)

EXIT_LEFT_OUT = 11
"""Exit code of `reindex` when it finished with points left out (--drop-missing): the same as
ingest's when some files could not be read."""

_LISTED = 20


@collections_app.command("reindex")
def reindex(
    name: str = typer.Argument(..., help="collection name"),
    model: str = typer.Option(..., "--model", "-m", metavar="BUNDLE|NAME", help=f"the model to fill it with: {MODEL_REFS}"),
    drop_missing: bool = typer.Option(
        False, "--drop-missing",
        help="leave out the points whose photo is gone or changed (default: refuse, and change nothing)"),
    keep_old: bool = typer.Option(False, "--keep-old", help="keep the old collection as NAME-previous instead of deleting it"),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="images per forward pass and per write"),
    workers: Optional[int] = typer.Option(
        None, "--decode-workers", "--workers", min=0, help="image decoding processes (default: cores - 1, at most 8)"),
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    api_key: Optional[str] = api_key_option(),
    device: Optional[str] = device_option(),
    runtime: str = runtime_option(),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON on stdout"),
) -> None:
    """Embed every photo of a collection again with another model, and swap the result in.

    The photos are read again from their stored paths; labels and the rest of each point's
    payload are kept. The new collection is built beside the old one and takes its place only
    when complete:

    On a Qdrant server (--url) NAME is an alias: searches by NAME go on, answered by the old
    model, until the alias moves to the new collection in one atomic step. A collection from
    before that layout is converted on its first reindex: between deleting it and naming the
    new one (two requests) searches of NAME find no collection.

    On the embedded store the collection is rebuilt in place: this command holds the store's
    lock until it finishes, so every other command on that store is refused meanwhile (stop a
    `dmwan serve` of the store first).

    Stopped before the end, NAME stays as it was; run the same command again to finish (on a
    server the photos embedded so far are not embedded again). Photos whose file is gone or
    changed make it refuse (exit 14) unless --drop-missing leaves their points out (exit 11).
    See docs/reindex.md.
    """
    from dmwan_qdrant import interrupts

    from .ingest import ProgressDisplay

    try:
        opened = open_cli_store(store, url, api_key)
    except StoreServedError as served:
        raise StoreServedError(
            f"the store is held by `dmwan serve` (pid {served.pid}) at {served.url}: reindex rebuilds a collection "
            "of the embedded store in place and needs the store to itself; stop the server, reindex, then start it "
            "again", served.url, served.pid, served.auth, served.ingest_token, served.collections) from None
    with opened as st:
        if not st.collection_exists(name):
            if not st.finish_interrupted_swap(name):
                st.get_model_record(name)  # the one-line "no collection named ..." before the model loads
            typer.echo(f"note: finished the swap an interrupted reindex of '{name}' had left: '{name}' is back, "
                       "complete, with the model it was reindexed to", err=True)
        from dmwan_qdrant.encoder import load_bundle
        from dmwan_qdrant.ingest.reindex import reindex_collection

        net = load_bundle(model, device, runtime)
        warn_if_toy(net)
        with ProgressDisplay(label="reindex", unit="photos") as bar:
            report = reindex_collection(
                st, name, net, drop_missing=drop_missing, keep_old=f"{name}-previous" if keep_old else None,
                batch_size=batch_size, num_workers=workers, progress=bar.update,
                notice=lambda line: typer.echo(f"note: {line}", err=True),
            )
        interrupts.work_done(lambda: f"the reindex of '{name}' had finished: {report.swap or 'nothing to do'}")
    if as_json:
        from dmwan_qdrant.store.factory import store_choice

        typer.echo(json.dumps({"store": store_choice(url, store)[1], **report.to_dict()}, indent=2))
    else:
        _print_reindex(report)
    if report.left_out:
        raise typer.Exit(EXIT_LEFT_OUT)


def _print_reindex(r: Any) -> None:
    from dmwan_qdrant.encoder import describe_record

    if r.already:
        typer.echo(f"'{r.collection}' is already filled by model {describe_record(r.new_model)}: nothing to do "
                   f"({r.points} points)")
        return
    typer.echo(f"reindexed '{r.collection}' ({r.backend}): model {describe_record(r.old_model)} -> "
               f"{describe_record(r.new_model)}")
    if r.points or r.reembedded:
        typer.echo(f"  {r.points} points: {r.reembedded} embedded again, {r.resumed} from an interrupted run, "
                   f"{len(r.left_out)} left out; {r.after} points now ({r.seconds:.1f} s)")
    typer.echo(f"  {r.swap}")
    for path, why in r.left_out[:_LISTED]:
        typer.echo(f"  left out: {path}: {why}")
    if len(r.left_out) > _LISTED:
        typer.echo(f"  ... and {len(r.left_out) - _LISTED} more (see --json)")
