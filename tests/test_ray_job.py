"""`ray job submit` against a real head node started with `ray start --head` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head():
    """A Ray head node on 127.0.0.1 started by `ray start`; yields (the `ray` CLI, the dashboard
    address, the environment to run it in)."""
    bin_dir = Path(sys.executable).parent
    ray = shutil.which("ray", path=str(bin_dir)) or shutil.which("ray")
    assert ray, "ray CLI missing: install the [train] extra"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RAY_AUTH_MODE": "disabled",  # loopback only
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    temp = Path("/tmp") / f"dmwan-rayjob-{os.getpid()}"
    dash = _free_port()
    start = [ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2",
             f"--temp-dir={temp}", "--disable-usage-stats",
             # Every agent on its own free port: another Ray in this process (the training tests'
             # local cluster) holds the default ones, and a job agent that cannot bind its port
             # leaves `ray job submit` with "No available agent".
             *(f"--{flag}={_free_port()}" for flag in (
                 "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                 "metrics-export-port", "ray-client-server-port"))]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield ray, f"http://127.0.0.1:{dash}", env
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_job_submit_trains_and_exports(tmp_path, head):
    ray, address, env = head
    config = {
        "name": "job",
        "storage_path": str(tmp_path / "runs"),
        "data": {"name": "procedural", "root": str(tmp_path / "bench"),
                 "generate": {"n_classes": 12, "unseen_classes": 4, "photos_per_class": 8,
                              "sketches_per_class": 8, "image_size": 64, "seed": 0}},
        "model": {"preset": "tiny"},
        "optim": {"epochs": 1, "steps_per_epoch": 5, "batch_size": 8, "warmup_steps": 2},
        "scaling": {"workers": 1, "cpus_per_worker": 0.5},
    }
    (tmp_path / "job.json").write_text(json.dumps(config))
    submit = [ray, "job", "submit", f"--address={address}", f"--working-dir={ROOT}",
              f"--runtime-env={ROOT / 'deploy/runtime_env.yaml'}", "--",
              "python", "-m", "dmwan_qdrant.training.train", "--config", str(tmp_path / "job.json")]
    job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=400, cwd=ROOT)
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-3000:]
    assert "succeeded" in output, output[-3000:]
    assert "epoch   1" in output, output[-3000:]
    assert (tmp_path / "runs" / "job" / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_ray_job_submit_ingests_on_the_cluster(tmp_path, head):
    """The README's `ray job submit -- dmwan ingest ... --ray`: the job's driver joins the
    cluster (``$RAY_ADDRESS``) rather than starting a Ray of its own."""
    from test_ingest import make_photos

    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.store import open_store

    ray, address, env = head
    files = make_photos(tmp_path / "photos", per_class=4)
    bundle = save_model(create_model("tiny", seed=0), tmp_path / "tiny")
    store = tmp_path / "store"
    submit = [ray, "job", "submit", f"--address={address}", "--",
              "dmwan", "ingest", str(tmp_path / "photos"), "--collection", "pics", "--model", str(bundle),
              "--store", str(store), "--ray", "--label-from-folder"]
    job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=300)
    output = job.stdout + job.stderr
    assert job.returncode == 0 and "succeeded" in output, output[-3000:]
    assert f"pics: {len(files)} added" in output, output[-3000:]
    assert not list(Path("/tmp").glob("dmwan-ray-*/session_latest/logs/job-driver-*")), "started its own Ray"
    with open_store(path=store) as st:
        labels = sorted(p["label"] for _, p in st.scroll_payloads("pics", ["label"]))
    assert labels == sorted(f.parent.name for f in files)
