"""Ctrl-C and SIGTERM: one clean stop in the main process, none in DataLoader workers.

The main process turns both signals into `Interrupted`, an ordinary `DmwanError` that long
operations catch to make their work durable and that the CLI reports on one line (exit 130 or
143). Python's own ``KeyboardInterrupt`` is not used for that: Typer and click swallow it, and it
can surface anywhere as a traceback.

An exception raised by a signal handler lands wherever the main thread happens to be, and other
code can lose it there. So:

- while a module is being imported, the handler raises ``KeyboardInterrupt`` instead: import-time
  code often guards optional features with ``except Exception`` (torch's CUDA preloading does,
  around seconds of work), and the CLI turns it back into the same one line, from `pending`;
- raised where it cannot propagate (an at-fork callback, such as the one logging runs in the
  parent each time a loader worker is forked, or a destructor), it is not printed but delivered
  again, to be raised at the next point where it can;
- a second signal exits at once;
- with a ``deadline``, the process exits that many seconds after the first signal whatever it
  is doing (for a stop swallowed where nothing can see it).

Whatever ends the run, its one line is the most specific one known: the message of the code that
caught the `Interrupted` (ingest's "96 of 240 files handled, ..."), else the `stop_hint` that was
in force when the signal came (also when the stop has left that block since), else the plain
"interrupted by SIGINT". Once a command's work is durable (`work_done`), a signal no longer
interrupts it: its report is written in full and the program then ends with the command's line
(what is stored), and so does a signal during the exit (`exiting`).

Loader workers are forked with the parent's handlers, so `loader_worker_init` resets them: the
worker ignores SIGINT (Ctrl-C reaches the whole process group, and the main process is the one
that stops the run), exits quietly on SIGTERM, and dies with its parent.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

# Light on purpose: the CLI imports this first, before anything slow.
from dmwan_qdrant.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_received: int | None = None
"""The signal that started the stop, since `install_signal_handlers`; None before one came."""

_deadline: float | None = None
_watchdog: threading.Timer | None = None
_stop_hint: Callable[[], str] | None = None
"""What the deadline's line says after the reason, while a `stop_hint` block runs."""
_hint_at_stop: Callable[[], str] | None = None
"""The `stop_hint` in force when the first signal came: the stop's line, wherever it ends."""
_work_done: Callable[[], str] | None = None
"""Set by `work_done`: what the line says after the reason for a signal that came too late to
interrupt anything."""

#: How a stop's one line names its signal.
STOP_REASONS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "interrupted (SIGTERM)"}
_finishing = False  # the final error line is written (or being written) by the caller


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received, _hint_at_stop
    if _received is not None:
        # A second signal while the first one's cleanup runs (a flush, workers shutting down):
        # the user insists. Raising again could land in a destructor and print a traceback, so
        # stop here; the store's write-ahead log keeps whatever was acknowledged.
        _exit_now(signum, " again: stopped at once")
    _received, _hint_at_stop = signum, _stop_hint
    _start_watchdog(signum)
    if _work_done is not None:
        return  # nothing left to interrupt: the report goes on, then the program ends on the line
    if _importing(frame):
        raise KeyboardInterrupt
    raise _interruption(signum)


def _interruption(signum: int) -> Interrupted:
    return Interrupted(_plain_line(signum), signum)


def _plain_line(signum: int) -> str:
    return f"interrupted by {signal.Signals(signum).name}"


def _line(signum: int) -> str:
    """The stop's one line, without ``error:`` (see the module's docstring)."""
    hint = _work_done or _hint_at_stop or _stop_hint
    if hint is not None:
        try:
            return f"{STOP_REASONS.get(signum, 'interrupted')}: {hint()}"
        except Exception:  # the plain line is still true
            pass
    return _plain_line(signum)


def is_plain(exc: Interrupted) -> bool:
    """Whether ``exc`` says no more than its signal (as raised by the handler, uncaught)."""
    return str(exc) == _plain_line(exc.signum)


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _on_unraisable(unraisable: Any) -> None:
    global _received
    if _received is not None and isinstance(unraisable.exc_value, (Interrupted, KeyboardInterrupt)):
        signum, _received = _received, None  # not a second signal: the first one, once more
        # From another thread, a moment later: from this one, the handler would run at once,
        # still inside the hook. Lost again, it comes back here and is sent again.
        again = threading.Timer(0.01, _thread.interrupt_main, args=(signum,))
        again.daemon = True
        again.start()
        return
    _previous_unraisablehook(unraisable)


_previous_unraisablehook = sys.unraisablehook
"""The hook `_on_unraisable` hands everything else to."""


def _start_watchdog(signum: int) -> None:
    global _watchdog
    if _deadline is None or _watchdog is not None:
        return
    _watchdog = threading.Timer(_deadline, _exit_now, args=(signum, ""))
    _watchdog.daemon = True
    _watchdog.start()


def _exit_now(signum: int, how: str) -> None:
    # From the handler or the watchdog thread: no Python cleanup can be trusted to finish.
    if not _finishing:
        if _work_done is not None:
            # The report may still sit in stdout's buffer. Not from the watchdog thread: with
            # the main thread stuck in a write, the flush would wait for it.
            if threading.current_thread() is threading.main_thread():
                _flush_quietly()
            line = _line(signum)
        else:
            line = _plain_line(signum) + how if how else _line(signum)
        os.write(2, f"error: {line}\n".encode())
    os._exit(128 + signum)


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError, RuntimeError):  # closed, or the write this signal cut into
            pass


@contextlib.contextmanager
def stop_hint(hint: Callable[[], str]) -> Iterator[None]:
    """A signal that comes while inside ends the run with the command's own line, the reason
    then ``hint()`` (what is stored, what to do next), where nothing says more: when the deadline
    cuts the clean stop short (a Ray shutdown on a loaded machine), also once the stop has left
    the block (the store's close after it); or when the `Interrupted` reaches the CLI as raised.
    ``hint`` may run on the watchdog thread, so it should only read plain values, never open a
    store."""
    global _stop_hint
    previous, _stop_hint = _stop_hint, hint
    try:
        yield
    finally:
        _stop_hint = previous


def _forget_in_child() -> None:
    # A forked child (a loader worker, before `loader_worker_init` runs) is not the program:
    # no deadline of its own, which would write a second error line.
    global _received, _deadline, _watchdog
    _received, _deadline, _watchdog = None, None, None


if hasattr(os, "register_at_fork"):  # no fork on Windows
    os.register_at_fork(after_in_child=_forget_in_child)


def pending() -> Interrupted | None:
    """The `Interrupted` for the signal received since `install_signal_handlers`, if any, with
    the stop's line (see the module's docstring).

    For a stop that surfaced as ``KeyboardInterrupt`` (see the module's docstring), as the silent
    exit 130 Typer makes of one, or as another error; and for one that `work_done` let the
    command finish.
    """
    return Interrupted(_line(_received), _received) if _received is not None else None


def work_done(line: Callable[[], str]) -> None:
    """Say that the running command's work is durable: only its report and the exit remain.

    From now on a stop signal interrupts nothing: the report is written in full, then the program
    ends with exit 128 + signal and the line ``interrupted (Ctrl-C): <line()>`` (what is stored),
    from `pending`; a second signal, or the deadline, ends it with that line at once. ``line``
    may run on the watchdog thread: it should only read plain values. For a program run once
    (the CLI): only `install_signal_handlers` undoes it.
    """
    global _work_done
    _work_done = line


def deferred() -> bool:
    """Whether a signal came after `work_done`: the command went on, and its end is that stop."""
    return _work_done is not None and _received is not None


def install_signal_handlers(deadline: float | None = None) -> Callable[[], None]:
    """Make SIGINT and SIGTERM raise `Interrupted` in the main thread; a second one exits at once.

    Args:
        deadline: seconds after the first signal by which the process exits, with the error
            line, even if the interruption was lost. Only for a process that is the program
            itself: the exit skips all cleanup.

    Returns a function that puts the previous handlers back (for callers that run the CLI
    inside a longer-lived process, such as tests). Outside the main thread, where Python allows
    no handlers, nothing changes.
    """
    global _received, _deadline, _watchdog, _finishing, _previous_unraisablehook, _hint_at_stop, _work_done
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _received, _deadline, _watchdog, _finishing = None, deadline, None, False
    _hint_at_stop, _work_done = None, None
    previous: dict[int, Any] = {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}
    previous_hook = sys.unraisablehook
    if previous_hook is not _on_unraisable:  # not when nested inside another installation
        _previous_unraisablehook = previous_hook
        sys.unraisablehook = _on_unraisable

    def restore() -> None:
        global _deadline, _received, _hint_at_stop, _work_done
        _received, _hint_at_stop, _work_done = None, None, None  # this run's stop is over
        for sig, handler in previous.items():
            # None: a handler installed outside Python, which cannot be put back; default it.
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        sys.unraisablehook = previous_hook
        _deadline = None
        if _watchdog is not None:
            _watchdog.cancel()

    return restore


def finishing() -> None:
    """Say the run is over and its outcome being reported (the error line, if any).

    Further signals are ignored until the handlers are restored (or `exiting`), and the
    deadline, if it strikes now, exits without a line of its own.
    """
    global _finishing
    _finishing = True
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def exiting(said: bool) -> None:
    """For the program itself, once its outcome is written (``said``: an error line was): the
    interpreter's exit comes next (atexit handlers, freeing every module, 1-2 s with torch
    loaded). A signal there ends the program at once with exit 128 + signal, after the output so
    far and, unless ``said``, one line: the `work_done` line (what is stored), or that the
    command had finished. Never the signal's default action, which ended such a run with no word.

    Everything the handler needs is bound now: while the interpreter exits, module globals are
    cleared. A signal the interpreter no longer gets to handle is dropped, and the exit goes on.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if _watchdog is not None:  # the outcome is out: as `install_signal_handlers`'s restore does
        _watchdog.cancel()
    lines: dict[int, bytes] = {}
    for sig in STOP_SIGNALS:
        if not said:
            text = _line(sig) if _work_done is not None else (
                f"{STOP_REASONS.get(sig, 'interrupted')} while exiting: the command had finished")
            lines[sig] = f"error: {text}\n".encode()

    def on_exit_signal(signum: int, frame: FrameType | None, lines: dict[int, bytes] = lines,
                       streams: tuple[Any, ...] = (sys.stdout, sys.stderr), write: Callable[..., Any] = os.write,
                       leave: Callable[[int], Any] = os._exit) -> None:
        for stream in streams:  # the report, if it still sits in stdout's buffer
            try:
                stream.flush()
            except Exception:  # closed, or the write this signal cut into
                pass
        if signum in lines:
            write(2, lines[signum])
        leave(128 + signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_exit_signal)


def loader_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders: signals stop the main process, and workers with it.

    - dies (SIGKILL) as soon as the parent does, even on ``kill -9`` (Linux; elsewhere torch's
      watchdog notices within seconds). Strictly, when the parent *thread* that forked it ends:
      iterate the loader from a thread that outlives it, such as the main thread;
    - ignores SIGINT: the main process handles Ctrl-C and shuts the workers down;
    - exits on SIGTERM at once, without a traceback, and with status 0;
    - says nothing when the parent drops a batch's transfer half-way, as it does when a signal
      interrupts it there.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_quietly)
    sys.excepthook = _quiet_when_parent_left
    _die_with_parent()


def _quiet_when_parent_left(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    # In a worker, `sys.excepthook` is called by multiprocessing's resource sharer: the thread
    # that hands the parent each batch's shared-memory descriptor. A broken connection there only
    # means that the parent stopped listening.
    if issubclass(exc_type, (ConnectionError, EOFError)):
        return
    sys.__excepthook__(exc_type, exc, tb)


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    # Status 0, not death by the signal: torch's SIGCHLD handler raises in the parent for any
    # other end, at whatever the parent is doing. When the whole process group got the SIGTERM
    # (systemd, `kill -TERM -PGID`), that is its own cleanup, and the error became a traceback.
    # The parent still sees a worker that left early, as "exited unexpectedly".
    os._exit(0)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import multiprocessing

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    # The parent may have died before prctl took effect: then nothing will ever signal us.
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(0)
