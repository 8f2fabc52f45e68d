"""The embedded store: one process per folder, and nothing acknowledged lost on ``kill -9``."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from dmwan_qdrant.errors import StoreInUseError
from dmwan_qdrant.store import CollectionSpec, EdgeStore
from faults import BUSY_DATASET

REPO = Path(__file__).resolve().parents[1]
SPEC = CollectionSpec(dim=8, token_dim=4, model={"fingerprint": "lock-test"})


def run_child(code: str, *args: str, **kw) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter (a real second process) with the repo importable."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,
    )


OPEN_CHILD = """
import sys
from dmwan_qdrant.errors import DmwanError
from dmwan_qdrant.store import EdgeStore
try:
    EdgeStore(sys.argv[1]).close()
except DmwanError as e:
    print(e)
    sys.exit(e.exit_code)
print("opened")
"""


def test_second_process_gets_store_in_use(tmp_path):
    store = EdgeStore(tmp_path)
    try:
        child = run_child(OPEN_CHILD, str(tmp_path))
        out, err = child.communicate(timeout=60)
        assert child.returncode == StoreInUseError.exit_code, err
        assert (
            out.strip()
            == f"store {tmp_path.resolve()} is in use by another process (pid {os.getpid()})"
        )
    finally:
        store.close()
    child = run_child(OPEN_CHILD, str(tmp_path))  # released on close
    out, err = child.communicate(timeout=60)
    assert (child.returncode, out.strip()) == (0, "opened"), err


def test_second_open_in_same_process(tmp_path):
    with EdgeStore(tmp_path):
        with pytest.raises(StoreInUseError, match="already open in this process"):
            EdgeStore(tmp_path)
    EdgeStore(tmp_path).close()


def test_engine_wal_lock_is_translated(tmp_path):
    """A shard held open by qdrant-edge directly (no folder lock) still gives StoreInUseError."""
    with EdgeStore(tmp_path) as store:
        store.create_collection("photos", SPEC)
    holder = run_child(
        """
        import sys, qdrant_edge
        shard = qdrant_edge.EdgeShard.load(sys.argv[1])
        print("held", flush=True)
        sys.stdin.read()
        """,
        str(tmp_path / "photos" / "shard"),
        stdin=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with EdgeStore(tmp_path) as store:
            with pytest.raises(StoreInUseError, match="in use by another process"):
                store.count("photos")
    finally:
        holder.kill()
        holder.communicate(timeout=30)


WRITER = """
import sys, uuid
import numpy as np
from dmwan_qdrant.store import CollectionSpec, EdgeStore, PhotoPoint
path, n, flush = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "flush"
store = EdgeStore(path)
spec = CollectionSpec(dim=8, token_dim=4, model={"fingerprint": "lock-test"})
store.create_collection("photos", spec)
rng = np.random.default_rng(0)
pts = [PhotoPoint(str(uuid.uuid5(uuid.NAMESPACE_URL, str(i))), rng.standard_normal(8),
                  rng.standard_normal((3, 4)), {"i": i}) for i in range(n)]
store.upsert("photos", pts)
if flush:
    store.flush()
print("acknowledged", flush=True)
import time
time.sleep(600)
"""


@pytest.mark.parametrize("flush", ["flush", "no-flush"])
def test_acknowledged_points_survive_kill_9(tmp_path, flush):
    n = 300
    child = run_child(WRITER, str(tmp_path), str(n), flush)
    try:
        line = child.stdout.readline().strip()
        assert line == "acknowledged", child.stderr.read() if line == "" else line
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with EdgeStore(tmp_path) as store:  # the kernel released the lock with the process
        assert store.count("photos") == n
        assert store.get_model_record("photos") == {"fingerprint": "lock-test"}
        first = str(uuid.uuid5(uuid.NAMESPACE_URL, "0"))
        assert store.retrieve("photos", [first]) == [{"i": 0}]
        rng = np.random.default_rng(0)
        assert store.search("photos", rng.standard_normal(8), 1)[0].id == first


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _open_within(path: Path, seconds: float) -> int:
    """Open the store and count 'photos', retrying while it is in use; the count."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with EdgeStore(path) as store:
                return store.count("photos")
        except StoreInUseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


LOADER_CHILD = """
import os, sys, time
import numpy as np
from torch.utils.data import DataLoader, Dataset
from dmwan_qdrant.store import CollectionSpec, EdgeStore, PhotoPoint

""" + BUSY_DATASET + """
store = EdgeStore(sys.argv[1])
store.create_collection("photos", CollectionSpec(dim=8, token_dim=4, model={"fingerprint": "lock-test"}))
store.upsert("photos", [PhotoPoint("00000000-0000-0000-0000-000000000001", np.ones(8), np.ones((2, 4)), {})])
for _ in DataLoader(Busy(), num_workers=1):  # forked while the store (and its shard's WAL) is open
    pass
"""


def _wait_for_file(path: Path, child: subprocess.Popen, seconds: float = 120) -> int:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert child.poll() is None, child.communicate()[1]
        assert time.monotonic() < deadline, "the loader worker did not start"
        time.sleep(0.05)
    return int(path.read_text())


def test_loader_worker_does_not_keep_the_store_locked(tmp_path):
    """After kill -9 of the process that opened the store, its DataLoader worker holds nothing."""
    store_dir, pid_file = tmp_path / "store", tmp_path / "worker.pid"
    child = run_child(LOADER_CHILD, str(store_dir), str(pid_file))
    worker = None
    try:
        worker = _wait_for_file(pid_file, child)
        with pytest.raises(StoreInUseError, match=f"pid {child.pid}"):  # the owner's lock is intact
            EdgeStore(store_dir)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)  # not communicate(): the worker still has the child's pipes
        assert _pid_alive(worker)  # orphaned, still decoding: only the fork hook is under test
        assert _open_within(store_dir, 1.0) == 1  # folder lock and shard WAL lock both free
    finally:
        if worker is not None and _pid_alive(worker):
            os.kill(worker, signal.SIGKILL)
        child.kill()
        child.communicate(timeout=30)


FORK_CHILD = """
import os, sys
from dmwan_qdrant.store import CollectionSpec, EdgeStore
folder = os.path.realpath(sys.argv[1])
store = EdgeStore(folder)
store.create_collection("photos", CollectionSpec(dim=8, token_dim=4, model={}))
store.count("photos")  # the shard is open: WAL and segment files
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    inside = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(folder + os.sep):
            inside.append(target)
    os.write(w, (repr(inside) + "\\n").encode())
    os._exit(0)
os.waitpid(pid, 0)
print(os.read(r, 65536).decode().strip(), flush=True)
print(store.count("photos"), flush=True)
sys.stdin.read()
"""


def test_forked_child_closes_the_store_files_and_the_owner_keeps_the_lock(tmp_path):
    holder = run_child(FORK_CHILD, str(tmp_path), stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "[]"
        assert holder.stdout.readline().strip() == "0"  # the shard still works in the owner
        with pytest.raises(StoreInUseError, match=f"in use by another process \\(pid {holder.pid}\\)"):
            EdgeStore(tmp_path)  # closing the child's copies did not unlock the owner's
    finally:
        holder.kill()
        holder.communicate(timeout=30)


def test_a_holder_that_is_gone_is_named_as_such(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    # Another open file description on the lock file, as a surviving child would have, with the
    # pid of a process that has exited.
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, f"{gone.pid}\n".encode(), 0)
        with pytest.raises(StoreInUseError) as info:
            EdgeStore(tmp_path)
        assert str(info.value) == (
            f"store {tmp_path.resolve()} is locked by pid {gone.pid}, which is no longer running "
            "(a child process it started may still hold the lock; it is released when that exits)"
        )
    finally:
        os.close(fd)
    EdgeStore(tmp_path).close()
