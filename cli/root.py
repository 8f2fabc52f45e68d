"""The root of the `dmwan` command tree: the one Typer app every command module adds itself to.

This module imports no command module. The commands import it (``from .root import app``);
`dmwan_qdrant.cli.app` imports the commands and runs the tree (`dmwan_qdrant.cli.app.main`).
"""

from __future__ import annotations

import typer

from dmwan_qdrant import __version__

_teardown_skippable = False


def skip_teardown() -> None:
    """Say that the running command has closed everything it opened: when it ends well, the
    program exits without the interpreter's teardown (see `dmwan_qdrant.cli.app._exit_fast`).

    For commands a user waits on in a fresh process, such as `dmwan query`: with torch and a
    model loaded, the teardown takes about a second on two cores (BENCHMARKS.md) and only frees
    memory that the exit frees anyway. Not for a command whose threads or open files outlive it.
    """
    global _teardown_skippable
    _teardown_skippable = True


def teardown_skippable() -> bool:
    """Whether the running command has called `skip_teardown`."""
    return _teardown_skippable


app = typer.Typer(
    name="dmwan",
    help="Search a photo collection with a drawing: DMWAN zero-shot sketch-based image retrieval on Qdrant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dmwan-qdrant {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="print the version and exit"),
) -> None:
    """Search a photo collection with a drawing: DMWAN zero-shot sketch-based image retrieval on Qdrant."""


DISTRIBUTIONS = ("torch", "open_clip_torch", "timm", "onnxruntime", "qdrant-client", "qdrant-edge-py", "ray", "fastapi",
                 "uvicorn")


def versions() -> dict[str, str | None]:
    """The installed version of each library dmwan-qdrant runs on (None: not installed)."""
    from dmwan_qdrant.versions import installed_versions

    return installed_versions(DISTRIBUTIONS)


@app.command()
def version(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Print the versions of dmwan-qdrant and the libraries it runs on."""
    if as_json:
        import json

        typer.echo(json.dumps({"dmwan-qdrant": __version__, "libraries": versions()}, indent=2))
        return
    typer.echo(f"dmwan-qdrant {__version__}")
    for dist, v in versions().items():
        typer.echo(f"  {dist} {v or '(not installed)'}")
