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

#: How a stop's one line names its signal.
STOP_REASONS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "interrupted (SIGTERM)"}
_finishing = False  # the final error line is written (or being written) by the caller


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is not None:
        # A second signal while the first one's cleanup runs (a flush, workers shutting down):
        # the user insists. Raising again could land in a destructor and print a traceback, so
        # stop here; the store's write-ahead log keeps whatever was acknowledged.
        _exit_now(signum, " again: stopped at once")
    _received = signum
    _start_watchdog(signum)
    if _importing(frame):
        raise KeyboardInterrupt
    raise _interruption(signum)


def _interruption(signum: int) -> Interrupted:
    return Interrupted(f"interrupted by {signal.Signals(signum).name}", signum)


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
        line = f"interrupted by {signal.Signals(signum).name}{how}"
        if _stop_hint is not None and not how:
            try:
                line = f"{STOP_REASONS.get(signum, 'interrupted')}: {_stop_hint()}"
            except Exception:  # the plain line is still true
                pass
        os.write(2, f"error: {line}\n".encode())
    os._exit(128 + signum)


@contextlib.contextmanager
def stop_hint(hint: Callable[[], str]) -> Iterator[None]:
    """While inside, a stop that the deadline cuts short (a clean stop slower than the deadline,
    such as a Ray shutdown on a loaded machine) still ends with the command's own line: the
    reason, then ``hint()`` (what is stored, what to do next). ``hint`` runs on the watchdog
    thread, so it should only read plain values, never open a store."""
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
    """The `Interrupted` for the signal received since `install_signal_handlers`, if any.

    For a stop that surfaced as ``KeyboardInterrupt`` (see the module's docstring), as the silent
    exit 130 Typer makes of one, or as another error.
    """
    return _interruption(_received) if _received is not None else None


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
    global _received, _deadline, _watchdog, _finishing, _previous_unraisablehook
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _received, _deadline, _watchdog, _finishing = None, deadline, None, False
    previous: dict[int, Any] = {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}
    previous_hook = sys.unraisablehook
    if previous_hook is not _on_unraisable:  # not when nested inside another installation
        _previous_unraisablehook = previous_hook
        sys.unraisablehook = _on_unraisable

    def restore() -> None:
        global _deadline
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

    Further signals are ignored until the handlers are restored, and the deadline, if it strikes
    now, exits without a line of its own.
    """
    global _finishing
    _finishing = True
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


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
