"""The embedded store: one process per folder, and nothing acknowledged lost on ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from dmwan_qdrant.errors import StoreInUseError
from dmwan_qdrant.store import CollectionSpec, EdgeStore

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
