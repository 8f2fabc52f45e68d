"""The `dmwan` command: thin commands over library functions.

This module assembles the program: every command module registers itself on the one Typer app
of `dmwan_qdrant.cli.root` and is imported here (`_register_commands`), and `main` runs it.
Errors the library raises on purpose (``DmwanError``) become one line on stderr and the error's
exit code, never a traceback; so do Ctrl-C (exit 130) and SIGTERM (exit 143), as `Interrupted`.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
from typing import NoReturn

from .startup import STARTUP_HINTS, command_name

try:
    import typer

    from dmwan_qdrant import interrupts
    from dmwan_qdrant.errors import DmwanError, Interrupted

    from .helptext import plain_help
    from .root import app, teardown_skippable
except KeyboardInterrupt:
    # Ctrl-C while the CLI itself loads, before `main` has installed its handlers.
    _hint = STARTUP_HINTS.get(command_name(None) or "")
    sys.stderr.write(f"error: interrupted (Ctrl-C): {_hint}\n" if _hint else "error: interrupted by SIGINT\n")
    raise SystemExit(130) from None

STOP_DEADLINE_S = 2.0
"""After Ctrl-C or SIGTERM, the program exits within this many seconds, whatever it is doing.

A clean stop takes well under a second; the deadline is for one lost in third-party code."""

COMMAND_MODULES = ("collections", "configs", "demo", "evaluate", "info", "ingest", "model", "query", "reindex", "serve",
                   "train")
"""The modules of `dmwan_qdrant.cli` that add commands to `app` when imported."""


def _register_commands() -> None:
    # Each module adds its commands to `app`; imported here so `dmwan --help` lists them all.
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __package__)


def main(argv: list[str] | None = None) -> None:
    """Console entry point; ``argv`` defaults to ``sys.argv[1:]``.

    Without ``argv`` (the program itself, not a caller in a longer-lived process), a run stopped
    by a signal, or a `skip_teardown` command that ended well, exits at once: see `_exit_fast`;
    and a signal during the interpreter's exit ends it with a line (`interrupts.exiting`).
    """
    # First of all: the commands import torch lazily, which takes seconds, and a Ctrl-C then
    # must be as clean as one later on.
    restore_signals = interrupts.install_signal_handlers(deadline=STOP_DEADLINE_S if argv is None else None)
    startup = STARTUP_HINTS.get(command_name(argv) or "")
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
            if argv is None and teardown_skippable() and isinstance(exc, SystemExit) and exc.code in (0, None):
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
