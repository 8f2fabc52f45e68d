"""`dmwan info`: where things are: the store a command would open (and why), a server holding
it, the device the encoders run on, and the versions."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from dmwan_qdrant.settings import ENV_QDRANT_URL, ENV_STORE

from .options import store_option, url_option
from .root import app, versions


@app.command("info")
def info_command(
    store: Optional[Path] = store_option(),
    url: Optional[str] = url_option(),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Say which store the commands open (and which option or variable chose it), whether a
    `dmwan serve` holds it, the device, and the versions. Opens nothing, creates nothing."""
    from dmwan_qdrant import __version__
    from dmwan_qdrant.encoder import usable_cores
    from dmwan_qdrant.runtime import gpu_names
    from dmwan_qdrant.server.discovery import find_server
    from dmwan_qdrant.store.factory import store_choice

    backend, where, why = store_choice(url, store)
    report: dict[str, Any] = {"version": __version__, "store": {"backend": backend, "location": where, "chosen_by": why}}
    if backend == "embedded":
        folder = Path(where)
        report["store"]["exists"] = folder.is_dir()
        served = find_server(folder) if folder.is_dir() else None
        report["server"] = {"url": served.url, "pid": served.pid, "collections": list(served.collections)} if served else None
    else:
        report["server"] = None
    # Asked of the driver, not of torch: importing torch took most of this command's 3.7 s.
    gpus = gpu_names()
    mps = sys.platform == "darwin" and platform.machine() == "arm64"
    report["device"] = {"name": "cuda" if gpus else "mps" if mps else "cpu", "cores": usable_cores()}
    if gpus:
        report["device"]["gpu"] = gpus[0]
    report["versions"] = versions()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    s = report["store"]
    state = "" if backend != "embedded" else ("" if s["exists"] else ", does not exist yet: `dmwan ingest` creates it")
    typer.echo(f"dmwan-qdrant {__version__}")
    typer.echo(f"store    {where} ({backend}, chosen by {why}{state})")
    srv = report["server"]
    typer.echo(f"server   {'`dmwan serve` at ' + srv['url'] + ' (pid ' + str(srv['pid']) + ') holds the store' if srv else 'none'}")
    gpu = f", {report['device']['gpu']}" if "gpu" in report["device"] else ""
    typer.echo(f"device   {report['device']['name']}{gpu} ({usable_cores()} CPU cores)")
    typer.echo(f"order    --url, then --store, then ${ENV_QDRANT_URL}, then ${ENV_STORE}, then the default folder")
    typer.echo("versions " + ", ".join(f"{d} {v or '(not installed)'}" for d, v in report["versions"].items()))
