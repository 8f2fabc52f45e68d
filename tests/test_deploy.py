"""The deployment files parse and agree with the code's real entry point and config paths."""

import json
import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENTRY = "dmwan_qdrant.training.train"


def _check_command(command: str) -> None:
    args = shlex.split(command)
    assert args[:3] == ["python", "-m", ENTRY], command
    from dmwan_qdrant.training.train import parse_args

    parsed = parse_args(args[3:])
    assert (ROOT / parsed.config).is_file(), parsed.config
    from dmwan_qdrant.training.config import TrainConfig

    TrainConfig.from_file(ROOT / parsed.config)


def test_entry_point_module_exists():
    import importlib

    assert callable(importlib.import_module(ENTRY).main)


def test_rayjob_manifest():
    job = yaml.safe_load((ROOT / "deploy/rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and job["apiVersion"].startswith("ray.io/")
    _check_command(job["spec"]["entrypoint"])
    spec = job["spec"]["rayClusterSpec"]
    import ray

    assert spec["rayVersion"] == ray.__version__
    workers = spec["workerGroupSpecs"][0]
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]


def test_cluster_launcher_and_readme_commands():
    cluster = yaml.safe_load((ROOT / "deploy/cluster.yaml").read_text())
    assert cluster["head_node_type"] in cluster["available_node_types"]
    text = (ROOT / "deploy/cluster.yaml").read_text() + (ROOT / "README.md").read_text()
    commands = re.findall(r"-- (python -m \S+ --config \S+[^\n\\]*)", text)
    assert commands, "the job-submit commands must be documented"
    for command in commands:
        _check_command(command.split(" --workers")[0])


def test_dockerfile_and_compose():
    docker = (ROOT / "deploy/Dockerfile").read_text()
    import ray

    assert f"rayproject/ray:{ray.__version__}" in docker
    for folder in ("dmwan_qdrant", "training", "cli"):
        assert f"COPY --chown=ray:users {folder} ./{folder}" in docker
    cmd = re.search(r'^CMD (\[.*\])$', docker, re.M).group(1)
    import json

    _check_command(" ".join(json.loads(cmd)))
    compose = yaml.safe_load((ROOT / "deploy/qdrant-compose.yaml").read_text())
    assert compose["services"]["qdrant"]["image"].startswith("qdrant/qdrant:")


def test_rayservice_manifest():
    import importlib

    import pytest

    pytest.importorskip("ray.serve")
    import ray
    from ray.serve import Application
    from ray.serve.schema import ServeDeploySchema

    service = yaml.safe_load((ROOT / "deploy/rayservice.yaml").read_text())
    assert service["kind"] == "RayService" and service["apiVersion"] == "ray.io/v1"
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)  # Ray's own check of the Serve config
    (app,) = serve_config["applications"]
    module, _, name = app["import_path"].partition(":")
    assert module.startswith("dmwan_qdrant.")
    builder = getattr(importlib.import_module(module), name)
    assert callable(builder)
    from dmwan_qdrant.server.ray_app import parse_options

    options = parse_options(app["args"])  # checks every option, starts nothing
    assert options.url and options.store is None and options.num_replicas > 1 and options.num_gpus >= 1
    assert isinstance(builder(app["args"]), Application) and not ray.is_initialized()

    job = yaml.safe_load((ROOT / "deploy/rayjob.yaml").read_text())
    image = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == image and 8000 in [p["containerPort"] for p in head["ports"]]
    workers = cluster["workerGroupSpecs"][0]
    worker = workers["template"]["spec"]["containers"][0]
    gpus = int(worker["resources"]["limits"]["nvidia.com/gpu"])
    assert worker["image"] == image and gpus >= 1
    assert workers["replicas"] * gpus >= options.num_replicas * options.num_gpus, "not enough GPUs for the replicas"


def test_rayjob_ingest_manifest():
    """The ingest RayJob's entry point parses as `dmwan ingest --ray` against a server, its
    encoders fit the workers' GPUs, and every node sees the photos under the same path."""
    import typer

    import dmwan_qdrant.cli.ingest  # noqa: F401 - registers the command
    from dmwan_qdrant.cli.app import app

    job = yaml.safe_load((ROOT / "deploy/rayjob-ingest.yaml").read_text())
    assert job["kind"] == "RayJob" and job["apiVersion"].startswith("ray.io/")
    args = shlex.split(job["spec"]["entrypoint"])
    assert args[:2] == ["dmwan", "ingest"]
    command = typer.main.get_command(app).commands["ingest"]
    params = command.make_context("ingest", args[2:]).params  # click's own parse and checks
    assert params["ray"] and params["url"] and params["store"] is None
    spec = job["spec"]["rayClusterSpec"]
    import ray

    assert spec["rayVersion"] == ray.__version__
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    (workers,) = spec["workerGroupSpecs"]
    worker = workers["template"]["spec"]["containers"][0]
    gpus = int(worker["resources"]["limits"]["nvidia.com/gpu"])
    assert params["encoders"] * params["gpus_per_encoder"] <= workers["replicas"] * gpus
    train = yaml.safe_load((ROOT / "deploy/rayjob.yaml").read_text())
    assert head["image"] == worker["image"] == train["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"][
        "containers"][0]["image"]
    for path in params["paths"]:
        for container in (head, worker):
            mounts = [m["mountPath"] for m in container["volumeMounts"]]
            assert any(str(path).startswith(m + "/") for m in mounts), (container["name"], path)
    mounts = [m["mountPath"] for m in head["volumeMounts"]]
    assert any(params["model"].startswith(m + "/") for m in mounts)
    assert any(e["name"] == "QDRANT_API_KEY" for e in head.get("env", []))


def test_search_image_installs_no_torch():
    """`deploy/Dockerfile.search` installs `.[search]`, whose requirements (its own extras
    followed) name no torch library, and starts the real `dmwan serve` with options it has."""
    import tomllib

    docker = (ROOT / "deploy/Dockerfile.search").read_text()
    assert "pip install --no-cache-dir '.[search]'" in docker
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras, todo, seen = project["optional-dependencies"], ["search"], set()
    requirements = list(project["dependencies"])
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for req in extras[extra]:
            m = re.match(r"dmwan-qdrant\[(.+)\]", req)
            if m:
                todo += [e for e in m.group(1).split(",") if e not in seen]
            else:
                requirements.append(req)
    names = {re.split(r"[<>=\[ ;]", r)[0].lower().replace("_", "-") for r in requirements}
    assert "onnxruntime" in names and "fastapi" in names
    assert not names & {"torch", "torchvision", "open-clip-torch", "timm", "safetensors", "ray"}
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", docker, re.M).group(1))
    assert entry[:2] == ["dmwan", "serve"]
    from typer.main import get_command

    from dmwan_qdrant.cli import app

    app._register_commands()
    serve = get_command(app.app).commands["serve"]
    known = {opt for p in serve.params for opt in p.opts}
    assert {a for a in entry[2:] if a.startswith("--")} <= known
