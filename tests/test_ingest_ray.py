"""Ingest on Ray Data, for real, on a local Ray instance (two workers on the machine's cores):
the same report, points and guarantees as the single-process ingest, into the embedded store and
into a Qdrant server (the stub), with a worker and the driver killed mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import one_line_error
from qdrant_stub import QdrantStub
from test_ingest import make_bad_files, make_photos

from dmwan_qdrant.encoder import load_bundle
from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.ingest import ingest, ingest_ray
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.store import open_store

pytestmark = pytest.mark.slow

DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for the in-process tests (`ingest_ray` then leaves it running)."""
    import ray

    from dmwan_qdrant.ray_runtime import init_ray

    started = init_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return save_model(create_model("tiny", seed=0), tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="module")
def model(bundle):
    return load_bundle(bundle, device="cpu")


def photo_tree(root: Path, per_class: int = 5) -> list[Path]:
    """Good photos in class folders, bad files of every kind, a duplicate; returns the good ones."""
    files = make_photos(root, per_class=per_class)
    make_bad_files(root / "bad")
    shutil.copy(files[3], root / "zz_dup.jpg")
    return files


def stored(store, name: str = "photos") -> dict[str, dict]:
    """Payloads by id, without ``mtime`` (a float engines round; ``mtime_ns`` is the exact one)."""
    return {i: {k: v for k, v in p.items() if k != "mtime"} for i, p in store.scroll_payloads(name)}


def vectors(store, name: str = "photos") -> dict[str, np.ndarray]:
    return {p.id: p.vector for p in store.read_points(name, sorted(stored(store, name)))}


def same_report(a, b) -> None:
    keys = ("found", "added", "updated", "unchanged", "duplicates", "pruned", "missing", "decoded")
    assert {k: getattr(a, k) for k in keys} == {k: getattr(b, k) for k in keys}
    assert sorted(a.failed) == sorted(b.failed)


def test_same_report_points_and_reruns_as_the_single_process_ingest(tmp_path, ray_cluster, model):
    files = photo_tree(tmp_path / "photos")
    kw = dict(label_from_folder=True, batch_size=4)
    with open_store(path=tmp_path / "one") as one, open_store(path=tmp_path / "ray") as many:
        plain = ingest([tmp_path / "photos"], one, "photos", model, num_workers=0, **kw)
        report = ingest_ray([tmp_path / "photos"], many, "photos", model, **kw)
        same_report(report, plain)
        assert (report.added, report.duplicates, len(report.failed)) == (len(files), 1, 5)
        assert dict(report.failed)[str(tmp_path / "photos" / "bad" / "bomb.png")].startswith("decompression bomb")
        assert stored(many) == stored(one)
        a, b = vectors(one), vectors(many)
        assert all(np.allclose(a[i], b[i], atol=1e-5) for i in a)

        # Unchanged files are skipped; a modified one replaces its point; a gone one is pruned.
        again = ingest_ray([tmp_path / "photos"], many, "photos", model, **kw)
        assert (again.added, again.unchanged, again.decoded) == (0, len(files), 0)
        files[0].write_bytes(files[-1].read_bytes() + b"\0")  # new content, same path
        files[1].unlink()
        changed = ingest_ray([tmp_path / "photos"], many, "photos", model, prune=True, **kw)
        # The modified file's new version is added and its old one removed; the gone one pruned.
        assert (changed.added, changed.pruned, changed.unchanged) == (1, 2, len(files) - 2)
        paths = sorted(p["path"] for p in stored(many).values())
        assert paths == sorted(map(str, files[:1] + files[2:]))


def test_into_a_qdrant_server_written_by_ray_tasks(tmp_path, ray_cluster, model):
    files = photo_tree(tmp_path / "photos", per_class=4)
    with open_store(path=tmp_path / "one") as one:
        plain = ingest([tmp_path / "photos"], one, "photos", model, num_workers=0, batch_size=4)
        expected = stored(one)
    with QdrantStub() as stub, open_store(url=stub.url) as server:
        report = ingest_ray([tmp_path / "photos"], server, "photos", model, batch_size=4)
        same_report(report, plain)
        assert stored(server) == expected
        again = ingest_ray([tmp_path / "photos"], server, "photos", model, batch_size=4)
        assert (again.added, again.unchanged, server.count("photos")) == (0, len(files), len(files))


def _pids(match) -> list[int]:
    """Pids of this machine's processes whose command line (bytes) satisfies ``match``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if match((entry / "cmdline").read_bytes()):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _ray_processes(title: str) -> list[int]:
    """Pids of the processes whose title starts with ``ray::<title>``."""
    return _pids(lambda cmd: cmd.startswith(f"ray::{title}".encode()))


def _processes_under(marker: str) -> list[int]:
    """Pids whose command line names ``marker`` (a Ray instance's temp dir)."""
    return _pids(lambda cmd: marker.encode() in cmd)


def test_killed_encoder_and_decoder_workers_are_replaced(tmp_path, ray_cluster, model):
    """SIGKILL the encoder actor's and a decoding task's processes mid-run: Ray restarts the
    actor and runs the lost tasks again; the run ends with every good file once."""
    files = photo_tree(tmp_path / "photos", per_class=8)
    killed: list[str] = []
    done = threading.Event()

    def kill_a_decoder() -> None:  # decoding tasks are short: watch for one
        while not done.is_set():
            for pid in _ray_processes("MapBatches(decode_batch)"):
                os.kill(pid, signal.SIGKILL)
                killed.append("decoder")
                return
            time.sleep(0.005)

    def kill_the_encoder(p) -> None:
        if p.decoded > 0 and "encoder" not in killed:
            for pid in _ray_processes("MapWorker(MapBatches(PhotoEncoder))"):
                os.kill(pid, signal.SIGKILL)
                killed.append("encoder")

    watcher = threading.Thread(target=kill_a_decoder, daemon=True)
    watcher.start()
    with open_store(path=tmp_path / "store") as st:
        try:
            report = ingest_ray([tmp_path / "photos"], st, "photos", model, batch_size=2, progress=kill_the_encoder)
        finally:
            done.set()
        assert sorted(killed) == ["decoder", "encoder"]
        assert (report.added, report.duplicates, len(report.failed)) == (len(files), 1, 5)
        assert sorted(p["path"] for p in stored(st).values()) == sorted(map(str, files))
        again = ingest_ray([tmp_path / "photos"], st, "photos", model, batch_size=2)
        assert (again.added, again.unchanged) == (0, len(files))


def test_cli_driver_killed_mid_run_then_rerun_stores_each_good_file_once(tmp_path, bundle):
    """A real SIGKILL of the driver mid-run: its local Ray instance goes with it; the real
    command run again (`--ray`) stores the rest, each good file once, with exit code 11."""
    files = photo_tree(tmp_path / "photos", per_class=8)
    store = tmp_path / "store"
    script = textwrap.dedent(f"""
        import os, signal
        from dmwan_qdrant.encoder import load_bundle
        from dmwan_qdrant.ingest import ingest_ray
        from dmwan_qdrant.store import open_store
        def die(p):
            if p.decoded >= 8:
                os.kill(os.getpid(), signal.SIGKILL)
        st = open_store(path={str(store)!r})
        ingest_ray([{str(tmp_path / "photos")!r}], st, "pics", load_bundle({str(bundle)!r}), batch_size=4,
                   progress=die)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    with open_store(path=store) as st:
        assert 0 < st.count("pics") < len(files)
    # Ray's processes for that run share the driver's fate (none left holding the cores).
    deadline = time.monotonic() + 30
    while _processes_under(f"/tmp/dmwan-ray-{proc.pid}") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_under(f"/tmp/dmwan-ray-{proc.pid}")

    run = subprocess.run([*DMWAN, "ingest", str(tmp_path / "photos"), "-c", "pics", "--store", str(store), "--ray",
                          "--batch-size", "4", "--json"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 11 and "Traceback" not in run.stderr, run.stderr
    report = json.loads(run.stdout)
    assert report["added"] + report["unchanged"] == len(files) and report["duplicates"] == 1
    assert len(report["failed"]) == 5
    with open_store(path=store) as st:
        assert sorted(p["path"] for _, p in st.scroll_payloads("pics", ["path"])) == sorted(map(str, files))


def test_encoders_that_would_take_every_cpu_are_refused(tmp_path, ray_cluster, model):
    """Two encoders on the two CPUs would leave no decoding task a CPU: refused, not a hang."""
    make_photos(tmp_path / "photos", per_class=1)
    with open_store(path=tmp_path / "store") as st, pytest.raises(UsageError, match="--encoders 1 or fewer"):
        ingest_ray([tmp_path / "photos"], st, "photos", model, encoders=2)


def test_cli_ray_options_need_ray(tmp_path, bundle):
    for extra in (["--encoders", "2"], ["--address", "127.0.0.1:6379"], ["--gpus-per-encoder", "1"]):
        run = subprocess.run([*DMWAN, "ingest", str(tmp_path), "-c", "pics", "--store", str(tmp_path / "s"),
                              "-m", str(bundle), *extra], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and "need --ray" in one_line_error(run.stderr)
    run = subprocess.run([*DMWAN, "ingest", str(tmp_path), "-c", "pics", "--store", str(tmp_path / "s"),
                          "-m", str(bundle), "--ray", "--decode-workers", "2"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "decoding runs in Ray tasks" in one_line_error(run.stderr)
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_cli_ctrl_c_mid_run_is_one_line_and_leaves_no_ray(tmp_path, bundle):
    """SIGINT once the encoders run: exit 130 and the one line saying what is stored (Ray Data's
    own trace of the interruption stays in its log file), no Ray process left behind."""
    files = make_photos(tmp_path / "photos", per_class=40)
    cmd = [*DMWAN, "ingest", str(tmp_path / "photos"), "-c", "pics", "--store", str(tmp_path / "store"),
           "--ray", "--batch-size", "2"]
    proc = subprocess.Popen([*cmd, "-m", str(bundle)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _ray_processes("MapWorker(MapBatches(PhotoEncoder))") and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert one_line_error(err).startswith("error: interrupted (Ctrl-C): ")
    assert "run the same command again to finish" in err
    deadline = time.monotonic() + 30
    while _processes_under(f"/tmp/dmwan-ray-{proc.pid}") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_under(f"/tmp/dmwan-ray-{proc.pid}")
    again = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["added"] + report["unchanged"] == len(files)


def test_an_onnx_encoder_ingests_as_torch_does_in_a_process_pool_and_on_ray(tmp_path, ray_cluster, bundle, model):
    pytest.importorskip("onnxruntime")
    from dmwan_qdrant.runtime.export import export_onnx

    export_onnx(bundle, tmp_path / "search-bundle")  # a search-only copy: the shared bundle stays as it is
    onnx_model = load_bundle(tmp_path / "search-bundle", device="cpu", runtime="onnx")
    photo_tree(tmp_path / "photos")
    kw = dict(label_from_folder=True, batch_size=4)
    with open_store(path=tmp_path / "torch") as a, open_store(path=tmp_path / "pool") as b, \
            open_store(path=tmp_path / "ray") as c:
        reference = ingest([tmp_path / "photos"], a, "photos", model, num_workers=0, **kw)
        same_report(ingest([tmp_path / "photos"], b, "photos", onnx_model, num_workers=1, **kw), reference)
        same_report(ingest_ray([tmp_path / "photos"], c, "photos", onnx_model, **kw), reference)
        assert stored(b) == stored(a) and stored(c) == stored(a)
        va, vb, vc = vectors(a), vectors(b), vectors(c)
        assert all(np.allclose(va[i], vb[i], atol=1e-4) and np.allclose(va[i], vc[i], atol=1e-4) for i in va)
