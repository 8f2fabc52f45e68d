"""The `dmwan` command: thin commands over library functions.

Every command module registers itself on the one Typer app here. Errors the library raises on
purpose (``DmwanError``) become one line on stderr and the error's exit code, never a traceback;
so do Ctrl-C (exit 130) and SIGTERM (exit 143), as `Interrupted`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
from typing import Any, NoReturn

STARTUP_HINTS = {
    "ingest": "stopped while starting, before any file was handled (no point written); "
              "run the same command again to finish",
}
"""What a stop before a command has done anything says after the reason, for a command that is
resumed by running it again: the same advice as a stop mid-run. Here, not in the command's module:
a Ctrl-C may come before that is imported."""


def _command_name(argv: list[str] | None) -> str | None:
    """The command ``argv`` (default: the program's) runs: its first word that is not an option."""
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)


try:
    import typer

    from dmwan_qdrant import __version__, interrupts
    from dmwan_qdrant.errors import DmwanError, Interrupted
except KeyboardInterrupt:
    # Ctrl-C while the CLI itself loads, before `main` has installed its handlers.
    _hint = STARTUP_HINTS.get(_command_name(None) or "")
    sys.stderr.write(f"error: interrupted (Ctrl-C): {_hint}\n" if _hint else "error: interrupted by SIGINT\n")
    raise SystemExit(130) from None

STOP_DEADLINE_S = 2.0
"""After Ctrl-C or SIGTERM, the program exits within this many seconds, whatever it is doing.

A clean stop takes well under a second; the deadline is for one lost in third-party code."""

_teardown_skippable = False


def skip_teardown() -> None:
    """Say that the running command has closed everything it opened: when it ends well, the
    program exits without the interpreter's teardown (see `_exit_fast`).

    For commands a user waits on in a fresh process, such as `dmwan query`: with torch and a
    model loaded, the teardown takes about a second on two cores (BENCHMARKS.md) and only frees
    memory that the exit frees anyway. Not for a command whose threads or open files outlive it.
    """
    global _teardown_skippable
    _teardown_skippable = True

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


def _register_commands() -> None:
    # Each module adds its commands to `app`; imported here so `dmwan --help` lists them all.
    from . import collections, configs, demo, evaluate, info, ingest, model, query, serve, train  # noqa: F401


LIST_ITEM = re.compile(r"^(?:[-*] |\.\w+: )")
"""A help line that starts a list item: a bullet, or a file suffix's entry (``.npy: ...``)."""


def reflow(text: str) -> str:
    """A docstring's paragraphs as one line each, so that the terminal wraps them, not the
    source's line breaks (which left "fused global and local-token / score" on two lines). A line
    that starts a list item (`LIST_ITEM`) keeps its own line."""
    paragraphs = []
    for block in text.strip().split("\n\n"):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        out: list[str] = []
        for line in lines:
            if out and not LIST_ITEM.match(line):
                out[-1] += " " + line
            else:
                out.append(line)
        paragraphs.append("\n".join(out))
    return "\n\n".join(paragraphs)


def plain_help(command: Any) -> Any:
    """``command`` (a Click command tree) with help that names values as users write them.

    Typer shows a Python type beside every option (``<bool>``, ``<str>``, ``<list[Path]>``); the
    tools these users know show nothing after a flag and a word in capitals after an option that
    takes a value (``--collection COLLECTION``). Metavars given by a command stay as they are.
    """
    from typer.core import TyperArgument, TyperOption

    if command.help:
        command.help = reflow(command.help)
    for param in command.params:
        if isinstance(param, TyperOption):
            if param.is_flag or param.count:
                param.metavar = ""
            elif param.metavar is None:
                longest = max(param.opts, key=len).lstrip("-")
                param.metavar = longest.replace("-", "_").upper()
        elif isinstance(param, TyperArgument):
            param.display_type_rich = lambda ctx: None  # the argument's name says it
    make_help_option = command.get_help_option

    def get_help_option(ctx: Any) -> Any:  # made per context, after the params above
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    return command


def main(argv: list[str] | None = None) -> None:
    """Console entry point; ``argv`` defaults to ``sys.argv[1:]``.

    Without ``argv`` (the program itself, not a caller in a longer-lived process), a run stopped
    by a signal, or a `skip_teardown` command that ended well, exits at once: see `_exit_fast`;
    and a signal during the interpreter's exit ends it with a line (`interrupts.exiting`).
    """
    # First of all: the commands import torch lazily, which takes seconds, and a Ctrl-C then
    # must be as clean as one later on.
    restore_signals = interrupts.install_signal_handlers(deadline=STOP_DEADLINE_S if argv is None else None)
    startup = STARTUP_HINTS.get(_command_name(argv) or "")
    said = False
    try:
        with interrupts.stop_hint(lambda: startup) if startup else contextlib.nullcontext():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            _register_commands()
            plain_help(typer.main.get_command(app))(args=argv, prog_name="dmwan")
    except BaseException as exc:
        interrupts.finishing()  # the run is over: a late Ctrl-C must not cut its report short
        error = _user_error(exc)
        if error is None:
            if argv is None and _teardown_skippable and isinstance(exc, SystemExit) and exc.code in (0, None):
                _exit_fast(0)
            raise
        typer.echo(f"error: {error}", err=True)
        said = True
        if isinstance(error, Interrupted) and argv is None:
            _exit_fast(error.exit_code)
        sys.exit(error.exit_code)
    finally:
        if argv is None:
            interrupts.exiting(said)  # the handlers stay: the default action would end it with no word
        else:
            restore_signals()


def _user_error(exc: BaseException) -> DmwanError | None:
    """The error to report for what ended the run, or None to let ``exc`` through.

    Once a signal has arrived, what ends the run is its consequence, reported as the
    interruption: code that catches every ``Exception`` can turn an `Interrupted` into another
    error (torch's ``load_state_dict`` into "Error(s) in loading state_dict"), and a signal during
    an import arrives as ``KeyboardInterrupt``, which Typer turns into a silent exit 130 (see
    `dmwan_qdrant.interrupts`). Runs that end normally (exit 0, or another exit code the command
    chose) keep their outcome.
    """
    if isinstance(exc, Interrupted):
        # With the message of the code that caught it and made its work durable; raised where
        # nothing did (during start-up), with the stop hint of that moment.
        return (interrupts.pending() or exc) if interrupts.is_plain(exc) else exc
    stopped = interrupts.pending()
    if isinstance(exc, SystemExit):
        # 130: Typer's exit for a KeyboardInterrupt. Any other code after a signal that came
        # once the work was done (`interrupts.work_done`): the report is out, now the stop's line.
        return stopped if exc.code == 130 or interrupts.deferred() else None
    if stopped is not None and isinstance(exc, (Exception, KeyboardInterrupt)):
        return stopped
    if isinstance(exc, DmwanError):
        return exc
    return _missing_torch(exc)


TORCH_MODULES = ("torch", "torchvision", "open_clip", "timm", "safetensors", "onnx", "ray")


def _missing_torch(exc: BaseException) -> DmwanError | None:
    """A command that needs PyTorch (or Ray, or onnx) run on a search-only install: one line
    that names the install, instead of an import traceback."""
    from dmwan_qdrant.errors import UsageError
    from dmwan_qdrant.runtime import TORCH_INSTALL

    name = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    top = (name or "").split(".")[0]
    if top not in TORCH_MODULES:
        return None
    command = " ".join(a for a in sys.argv[1:3] if not a.startswith("-")) or "this command"
    if top == "ray":
        return UsageError(f"dmwan {command} needs Ray, which is not installed here: pip install 'dmwan-qdrant[train]'")
    what = "onnx" if top == "onnx" else "PyTorch"
    return UsageError(f"dmwan {command} needs {what}, which is not installed here: {TORCH_INSTALL} "
                      "(a search-only install runs ingest, query and serve with an exported bundle)")


def _exit_fast(code: int) -> NoReturn:
    """Exit without the interpreter's final teardown.

    With torch loaded, freeing every module's objects one by one takes seconds, which a user who
    pressed Ctrl-C (or who waits for a finished `skip_teardown` command) waits through for
    nothing: what had to be durable is (the command's ``with`` blocks have closed the store).
    Exit handlers still run (Ray's shutdown, multiprocessing's finalizers), and the standard
    streams are flushed.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, a closed stream: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
