"""The `dmwan` command: thin commands over library functions.

Every command module registers itself on the one Typer app here. Errors the library raises on
purpose (``DmwanError``) become one line on stderr and the error's exit code, never a traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from dmwan_qdrant import __version__
from dmwan_qdrant.errors import DmwanError

app = typer.Typer(
    name="dmwan",
    help="Search a photo collection with a drawing: DMWAN zero-shot sketch-based image retrieval on Qdrant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Search a photo collection with a drawing: DMWAN zero-shot sketch-based image retrieval on Qdrant."""


@app.command()
def version() -> None:
    """Print the versions of dmwan-qdrant and the libraries it runs on."""
    import importlib.metadata as md

    typer.echo(f"dmwan-qdrant {__version__}")
    for dist in ("torch", "open_clip_torch", "timm", "qdrant-client", "qdrant-edge-py", "ray"):
        try:
            typer.echo(f"  {dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            typer.echo(f"  {dist} (not installed)")


def _register_commands() -> None:
    # Each module adds its commands to `app`; imported here so `dmwan --help` lists them all.
    from . import collections, demo, evaluate, ingest, query, train  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Console entry point; ``argv`` defaults to ``sys.argv[1:]``."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _register_commands()
    try:
        app(args=argv, prog_name="dmwan")
    except DmwanError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
