"""Ctrl-C and SIGTERM stop the real CLI at once, on one line; loader workers follow their parent.

Also: "store in use" comes before the model imports. Each test drives `python -m dmwan_qdrant.cli`
(or a small wrapper) in a fresh process, because signals and imports are per process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import dmwan
from dmwan_qdrant.cli.app import STARTUP_HINTS, STOP_DEADLINE_S
from dmwan_qdrant.errors import StoreInUseError
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.store import open_store
from dmwan_qdrant.store.lock import FolderLock
from test_cli_ingest import make_photos
from faults import BUSY_DATASET

REPO = Path(__file__).resolve().parents[1]
DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return save_model(create_model("tiny", seed=0), tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    make_photos(root, n=600)
    return root


class Watched:
    """A process whose stderr lines are collected as they come (to wait for its progress)."""

    def __init__(self, args: list[str], **kw) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, **kw)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, prefix: str, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while not any(line.startswith(prefix) for line in self.lines):
            assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {prefix!r} line: {self.stderr()}"
            time.sleep(0.02)

    def stop(self, sig: int, group: bool) -> float:
        """Send ``sig`` (to the whole process group, as a terminal's Ctrl-C does, when ``group``);
        the seconds until the process exited."""
        sent = time.monotonic()
        (os.killpg if group else os.kill)(self.proc.pid, sig)
        self.proc.wait(timeout=60)
        took = time.monotonic() - sent
        self._reader.join(timeout=10)
        return took

    def stderr(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def assert_one_interrupted_line(err: str) -> str:
    """The one ``error: interrupted ...`` line of ``err`` (no traceback, nothing else)."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "interrupted" in errors[0], err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    return errors[0]


RESUME = "; run the same command again to finish"
"""How a stopped ingest's line ends, whenever it stopped."""


def group_is_gone(pgid: int, seconds: float) -> bool:
    """Whether every process of the group (the CLI's loader workers too) exits within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)  # not to leave them behind
            return False
        time.sleep(0.02)


@pytest.mark.parametrize(
    "sig, group",
    [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
    ids=["ctrl-c", "sigint-to-main", "sigterm-to-main", "sigterm-to-group"],
)
def test_signal_during_ingest_stops_on_one_line_and_a_rerun_finishes(tmp_path, capsys, bundle, photos, sig, group):
    store = tmp_path / "store"
    run = Watched(
        [*DMWAN, "ingest", str(photos), "-c", "pics", "-m", str(bundle), "--store", str(store),
         "--batch-size", "4", "--workers", "1"],
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    try:
        run.wait_for("ingest: ")  # the model is loaded and the files are walked
        time.sleep(0.5)  # the loader worker is decoding, batches are being stored
        took = run.stop(sig, group)
    finally:
        run.kill()
    assert run.proc.returncode == 128 + sig, run.stderr()
    assert assert_one_interrupted_line(run.stderr()).endswith(RESUME)
    assert took < 2.0, f"exited {took:.2f} s after the signal"
    assert group_is_gone(run.proc.pid, 1.0)  # no loader worker outlives the run

    code, out, _ = dmwan(capsys, "ingest", photos, "-c", "pics", "--store", store, "--json")
    report = json.loads(out)
    assert code == 0 and report["failed"] == [] and report["added"] + report["unchanged"] == 600
    with open_store(path=store) as st:
        assert st.count("pics") == 600


@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_ctrl_c_during_start_up(tmp_path, bundle, photos, delay):
    """Between the interpreter's start and the first batch: the imports, the model loading."""
    proc = subprocess.Popen(
        [*DMWAN, "ingest", str(photos), "-c", "pics", "-m", str(bundle), "--store", str(tmp_path / "s")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert assert_one_interrupted_line(err).endswith(RESUME)  # the same advice as a stop mid-run


# Ctrl-C at one step of an ingest's start-up (argv[1]), then the CLI with the rest of argv: while
# the CLI imports typer (before `main`), while torch is imported, as the store opens, as the model
# loads, as the files are walked. Raised the way Python raises it for a SIGINT at that moment.
AT_A_START_UP_STEP = """
import importlib, os, runpy, signal, sys

step = sys.argv.pop(1)

class Trip:
    def __init__(self, module):
        self.module = module
    def find_spec(self, name, path=None, target=None):
        if name == self.module:
            sys.meta_path.remove(self)
            if step == "cli-import":
                raise KeyboardInterrupt  # `main` has no handlers yet: Python's own
            os.kill(os.getpid(), signal.SIGINT)
        return None

if step in ("cli-import", "torch-import"):
    sys.meta_path.insert(0, Trip("typer" if step == "cli-import" else "torch"))
else:
    module, name = {"store-open": ("dmwan_qdrant.store", "open_store"),
                    "model-load": ("dmwan_qdrant.encoder", "load_bundle"),
                    "walk": ("dmwan_qdrant.ingest.run", "plan_ingest")}[step]
    owner = importlib.import_module(module)
    real = getattr(owner, name)

    def tripped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    setattr(owner, name, tripped)
sys.argv = ["dmwan", *sys.argv[1:]]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("step", ["cli-import", "torch-import", "store-open", "model-load", "walk"])
def test_ctrl_c_at_each_start_up_step_gives_the_resume_hint(tmp_path, bundle, step):
    make_photos(tmp_path / "photos", n=4)
    proc = subprocess.run([sys.executable, "-c", AT_A_START_UP_STEP, step, "ingest", str(tmp_path / "photos"),
                           "-c", "pics", "-m", str(bundle), "--store", str(tmp_path / "s")],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 130, proc.stderr
    line = assert_one_interrupted_line(proc.stderr)
    assert line == f"error: interrupted (Ctrl-C): {STARTUP_HINTS['ingest']}" and line.endswith(RESUME)
    assert proc.stdout == ""


# Ctrl-C at the moment `dmwan_qdrant.cli.app` imports typer, then the CLI run the way
# `python -m dmwan_qdrant.cli` runs it. The KeyboardInterrupt is raised there directly, as Python
# raises it for a SIGINT. A real signal sent to itself here once never surfaced (the help was
# printed, exit 0, on a fresh clone's first run only) and left the test to timing; the real signal
# during start-up is `test_ctrl_c_during_start_up`.
TRIP_ON_IMPORT = """
import runpy, sys

class Trip:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            sys.meta_path.remove(self)
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Trip())
sys.argv = ["dmwan", "--help"]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_while_the_cli_itself_imports():
    proc = subprocess.run([sys.executable, "-c", TRIP_ON_IMPORT], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert_one_interrupted_line(proc.stderr)
    assert proc.stdout == ""  # stopped before the help


# Like torch's CUDA preloading during `import torch`: an import-time guard that catches every
# Exception, here around the moment the signal arrives.
SWALLOWED_BY_AN_IMPORT = """
import os, runpy, signal, sys

class Guard:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except Exception:
                pass
        return None

sys.meta_path.insert(0, Guard())
sys.argv = ["dmwan", *sys.argv[1:]]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""

# Like torch's `load_state_dict`, which catches every Exception of a tensor copy and reports
# "Error(s) in loading state_dict": the signal arrives during such a copy.
TURNED_INTO_ANOTHER_ERROR = """
import os, runpy, signal, sys
import torch

loading = torch.nn.Module.load_state_dict
copy = torch.Tensor.copy_
tripped = []

def load_state_dict(self, *args, **kwargs):
    tripped.append("loading")
    return loading(self, *args, **kwargs)

def copy_(self, *args, **kwargs):
    if tripped == ["loading"]:
        tripped.append("sent")
        os.kill(os.getpid(), signal.SIGINT)
    return copy(self, *args, **kwargs)

torch.nn.Module.load_state_dict = load_state_dict
torch.Tensor.copy_ = copy_
sys.argv = ["dmwan", *sys.argv[1:]]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""


# The signal arrives during an at-fork callback in the parent, as when logging's runs while the
# loader forks its worker: an exception there cannot propagate, Python prints and drops it.
LOST_IN_AN_AT_FORK_CALLBACK = """
import os, runpy, signal, sys

fired = []

def after_fork_in_parent():
    if not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGINT)

os.register_at_fork(after_in_parent=after_fork_in_parent)
sys.argv = ["dmwan", *sys.argv[1:]]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""

# Ordinary code that catches every Exception and goes on, where no one can tell: the first
# upsert of the run, in a run slowed down to outlast the deadline. Prints when the signal was
# sent, for the deadline.
SWALLOWED_FOR_GOOD = """
import os, runpy, signal, sys, time
from dmwan_qdrant.store.edge import EdgeStore

upsert = EdgeStore.upsert
sent = []

def swallowing_upsert(self, *args, **kwargs):
    if not sent:
        sent.append(time.monotonic())
        print(f"sent {sent[0]}", file=sys.stderr, flush=True)
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except Exception:
            pass
    time.sleep(0.05)
    return upsert(self, *args, **kwargs)

EdgeStore.upsert = swallowing_upsert
sys.argv = ["dmwan", *sys.argv[1:]]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""


# The signal arrives while this process fetches a batch's shared-memory descriptor from the
# worker (multiprocessing's resource sharer, which torch uses for tensors), and the connection
# drops: the worker's serving thread sees it at once.
DURING_A_DESCRIPTOR_TRANSFER = """
import os, runpy, signal, sys
import multiprocessing.connection as connection

answer = connection.answer_challenge
sent = []

def interrupted_answer(conn, authkey):
    if not sent:
        sent.append(1)
        conn.close()
        os.kill(os.getpid(), signal.SIGINT)
    return answer(conn, authkey)

connection.answer_challenge = interrupted_answer
sys.argv = ["dmwan", *sys.argv[1:]]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    "wrapper",
    [SWALLOWED_BY_AN_IMPORT, TURNED_INTO_ANOTHER_ERROR, LOST_IN_AN_AT_FORK_CALLBACK, SWALLOWED_FOR_GOOD,
     DURING_A_DESCRIPTOR_TRANSFER],
    ids=["import-guard", "other-error", "at-fork", "swallowed", "fd-transfer"],
)
def test_an_interrupt_caught_by_other_code_still_stops_the_run(tmp_path, bundle, photos, wrapper):
    args = ["ingest", str(photos), "-c", "pics", "-m", str(bundle), "--store", str(tmp_path / "s"),
            "--batch-size", "4", "--workers", "1"]
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, env=ENV, timeout=300)
    ended = time.monotonic()
    assert proc.returncode == 130, proc.stderr
    sent = [float(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("sent ")]
    assert_one_interrupted_line("\n".join(line for line in proc.stderr.splitlines() if not line.startswith("sent ")))
    assert proc.stdout == ""  # no summary: the run did not go on
    if sent:  # lost for good: the deadline stopped it
        assert ended - sent[0] < STOP_DEADLINE_S + 1.0


# Mid-run stops whose `Interrupted` does not come back to the ingest as raised: the three ways the
# Ray ingest's Ctrl-C ended with a bare "interrupted by SIGINT". The signal comes right after the
# first batch is written.
STOP_AFTER_THE_FIRST_BATCH = """
import os, runpy, signal, sys, time
import dmwan_qdrant.ingest.run as run
from dmwan_qdrant.errors import Interrupted
from dmwan_qdrant.ingest.write import BatchWriter

how = sys.argv.pop(1)
write, stopped_message = BatchWriter.write, run.stopped_message
sent = []

class Trip:  # the signal during an import, as Ray Data imports modules as it runs
    def find_spec(self, name, path=None, target=None):
        if name == "module_imported_mid_run":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

def tripping_write(self, *args, **kwargs):
    out = write(self, *args, **kwargs)
    if not sent:
        sent.append(1)
        if how == "import":
            sys.meta_path.insert(0, Trip())
            try:
                import module_imported_mid_run  # noqa: F401
            except ImportError:
                pass
        elif how == "wrapped":  # code that turns the Interrupted into its own error
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except Interrupted as e:
                raise ValueError("a task failed") from e
        else:
            os.kill(os.getpid(), signal.SIGINT)
    return out

def slow_stopped_message(*args, **kwargs):
    # A clean stop that outlasts the deadline after the ingest's stop block (Ray's shutdown
    # and the store's flush on a loaded machine).
    time.sleep(3)
    return stopped_message(*args, **kwargs)

BatchWriter.write = tripping_write
if how == "slow":
    run.stopped_message = slow_stopped_message
sys.argv = ["dmwan", *sys.argv[1:]]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("how", ["import", "wrapped", "slow"])
def test_a_stop_that_does_not_reach_the_ingest_as_raised_still_says_what_is_stored(tmp_path, bundle, photos, how):
    proc = subprocess.run([sys.executable, "-c", STOP_AFTER_THE_FIRST_BATCH, how, "ingest", str(photos), "-c", "pics",
                           "-m", str(bundle), "--store", str(tmp_path / "s"), "--batch-size", "4", "--workers", "0"],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 130, proc.stderr
    line = assert_one_interrupted_line(proc.stderr)
    assert line.startswith("error: interrupted (Ctrl-C): 4 of 600 files handled, ") and line.endswith(RESUME), line
    assert proc.stdout == ""


# -- loader workers -----------------------------------------------------------------------------

LOADER = """
import os, sys, time
from pathlib import Path
from torch.utils.data import DataLoader, Dataset
from dmwan_qdrant.errors import Interrupted
from dmwan_qdrant.interrupts import install_signal_handlers, loader_worker_init
from dmwan_qdrant.store.lock import FolderLock

""" + BUSY_DATASET + """
FolderLock(Path(sys.argv[1])).acquire()
install_signal_handlers()  # as the CLI does: the workers inherit these handlers
try:
    for _ in DataLoader(Busy(), num_workers=1, worker_init_fn=loader_worker_init):
        pass
except Interrupted as e:
    print("interrupted:", e, flush=True)
except RuntimeError as e:
    print("loader:", e, flush=True)
"""


def _start_loader(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    pid_file = tmp_path / "worker.pid"
    child = subprocess.Popen([sys.executable, "-c", LOADER, str(tmp_path), str(pid_file)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not pid_file.exists():
        assert child.poll() is None, child.communicate()[1]
        assert time.monotonic() < deadline, "the loader worker did not start"
        time.sleep(0.02)
    return child, int(pid_file.read_text())


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_loader_worker_dies_with_its_parent(tmp_path):
    child, worker = _start_loader(tmp_path)
    try:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert _gone_within(worker, 1.0)
        lock = FolderLock(tmp_path)
        lock.acquire()  # nothing holds the folder any more
        lock.release()
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)
        child.kill()
        child.communicate(timeout=30)


def test_loader_worker_ignores_ctrl_c_and_exits_quietly_on_sigterm(tmp_path):
    child, worker = _start_loader(tmp_path)
    try:
        os.kill(worker, signal.SIGINT)  # a terminal's Ctrl-C reaches the workers too
        time.sleep(0.5)
        assert _running(worker) and child.poll() is None
        os.kill(worker, signal.SIGTERM)
        assert _gone_within(worker, 1.0)
        out, err = child.communicate(timeout=60)
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=30)
    # Neither signal ran the inherited handler in the worker (it would have sent an Interrupted to
    # the parent's loop); the parent only sees a worker that left.
    assert out.startswith("loader: ") and "exited unexpectedly" in out, out + err
    assert "killed by signal" not in out, out  # exit status 0: see `_exit_quietly`
    assert "Traceback" not in err, err


# -- store in use, before the model imports -----------------------------------------------------

HOLDER = """
import sys
from dmwan_qdrant.store import EdgeStore
store = EdgeStore(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""

# Runs the CLI in this process, then says whether torch was imported.
PROBE = """
import sys
from dmwan_qdrant.cli.app import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as e:
    code = e.code
print(code, "torch" in sys.modules, flush=True)
"""


@pytest.mark.parametrize("command", ["query", "ingest"])
def test_store_in_use_is_reported_before_the_model_loads(tmp_path, command):
    store = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        (tmp_path / "x.png").write_bytes(b"")
        args = {"query": ["query", str(tmp_path / "x.png"), "-c", "c"],
                "ingest": ["ingest", str(tmp_path), "-c", "c", "-m", str(tmp_path / "model")]}[command]
        probe = subprocess.run([sys.executable, "-c", PROBE, *args, "--store", str(store)],
                               capture_output=True, text=True, env=ENV, timeout=120)
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    errors = [line for line in probe.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "in use by another process" in errors[0], probe.stderr
    assert probe.stdout.split() == [str(StoreInUseError.exit_code), "False"]


_SLOW_STOP = """
import os, signal, sys, time
from dmwan_qdrant.errors import Interrupted
from dmwan_qdrant.interrupts import install_signal_handlers, stop_hint
install_signal_handlers(deadline=0.3)
with stop_hint(lambda: "3 of 9 files handled; run the same command again to finish"):
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except Interrupted:
        time.sleep(5)  # a clean stop slower than the deadline (a Ray shutdown on a loaded machine)
"""


def test_a_stop_cut_short_by_the_deadline_still_says_what_is_stored():
    run = subprocess.run([sys.executable, "-c", _SLOW_STOP], capture_output=True, text=True, timeout=60)
    assert run.returncode == 130
    assert run.stderr.strip() == "error: interrupted (Ctrl-C): 3 of 9 files handled; run the same command again to finish"


# A signal once the ingest's work is done (argv[1]: "report", as its report is printed; "exit", from
# an exit handler, as the interpreter exits), then the CLI with the rest of argv.
AFTER_THE_WORK = """
import atexit, os, runpy, signal, sys, time
import dmwan_qdrant.cli.ingest as cli_ingest

moment, sig = sys.argv.pop(1), getattr(signal, sys.argv.pop(1))
report = cli_ingest._report

def late_report(*args, **kwargs):
    os.kill(os.getpid(), sig)
    return report(*args, **kwargs)

def late_exit():
    os.kill(os.getpid(), sig)
    time.sleep(1)

if moment == "report":
    cli_ingest._report = late_report
else:
    atexit.register(late_exit)
sys.argv = ["dmwan", *sys.argv[1:]]
runpy.run_module("dmwan_qdrant.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    "moment, sig, as_json",
    [("report", "SIGINT", False), ("report", "SIGTERM", True), ("exit", "SIGINT", True), ("exit", "SIGTERM", False)],
    ids=["report-ctrl-c", "report-sigterm-json", "exit-ctrl-c-json", "exit-sigterm"],
)
def test_a_signal_after_the_work_is_done_ends_with_the_report_and_what_is_stored(tmp_path, bundle, moment, sig,
                                                                                 as_json):
    make_photos(tmp_path / "photos", n=12)
    proc = subprocess.run([sys.executable, "-c", AFTER_THE_WORK, moment, sig, "ingest", str(tmp_path / "photos"),
                           "-c", "pics", "-m", str(bundle), "--store", str(tmp_path / "s"),
                           *(["--json"] if as_json else [])],
                          capture_output=True, text=True, env=ENV, timeout=120)
    signum = getattr(signal, sig)
    assert proc.returncode == 128 + signum, proc.stderr  # a signal ended it, as any other stop
    if as_json:
        assert json.loads(proc.stdout)["added"] == 12  # the whole report
    else:
        assert proc.stdout.startswith("pics: 12 added, 0 updated, 0 unchanged, "), proc.stdout
    line = assert_one_interrupted_line(proc.stderr)
    reason = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert line == (f"error: interrupted ({reason}): the ingest had finished (12 added, 0 updated, 0 failed), "
                    "12 points are stored in 'pics'; nothing is left to run")
    with open_store(path=tmp_path / "s") as st:
        assert st.count("pics") == 12


def test_the_store_is_free_as_soon_as_a_killed_ingest_is_gone(tmp_path, capsys, bundle, photos):
    """kill -9 of the ingest alone (its loader worker dies a moment later, of the parent's death):
    the next command opens the store at once, never "in use" or "locked"."""
    store = tmp_path / "store"
    run = Watched([*DMWAN, "ingest", str(photos), "-c", "pics", "-m", str(bundle), "--store", str(store),
                   "--batch-size", "4", "--workers", "1"], start_new_session=True)
    try:
        run.wait_for("ingest: ")
        time.sleep(0.5)  # batches are being stored, the loader worker decodes
        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.wait(timeout=60)
        code, out, err = dmwan(capsys, "ingest", photos, "-c", "pics", "--store", store, "--json")
    finally:
        run.kill()
    assert code == 0 and "in use" not in err and "locked" not in err, err
    report = json.loads(out)
    assert report["added"] + report["unchanged"] == 600
