"""What Ray Train costs: samples/s of the Ray Train loop against a plain PyTorch loop, in one run.

Usage::

    python benchmarks/ray_overhead.py                     # tiny preset, procedural data, all cores
    python benchmarks/ray_overhead.py --steps 100 --epochs 3 --threads 2
    python benchmarks/ray_overhead.py --preset vit_b16 --image-size 224 --gpu --batch 64   # on a GPU

Both arms run the same training (``training/loop.py:run_training``: same model, batch, data,
seed and epochs); one arm calls it in this process (``train_local``), the other through Ray
Train's ``TorchTrainer`` with one worker (``fit``). Each epoch reports its own training seconds
(evaluation excluded), so:

- ``samples/s`` is quadruplets per second over the epochs after the first (the first carries
  the data loader's and the allocator's warm-up), at least a minute of training by default;
- ``start-up`` is the time from the call until the first training step: for Ray, starting the
  local cluster, the worker process, the imports there, the model and the data listing; for the
  plain loop, the model and the data listing.

The ratio Ray/plain is the figure to read; absolute speeds move with the machine's load, which is
why the two arms run back to back in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _config(args: argparse.Namespace, workdir: Path, name: str):
    from dmwan_qdrant.training.config import TrainConfig

    cfg = TrainConfig.from_file(Path(args.config))
    overrides = {
        "name": name,
        "storage_path": str(workdir / "runs"),
        "optim.epochs": args.epochs,
        "optim.steps_per_epoch": args.steps,
        "scaling.workers": 1,
        "scaling.cpus_per_worker": args.threads,
        "scaling.use_gpu": args.gpu,
        "scaling.max_failures": 0,
    }
    if args.data_root:
        overrides["data.root"] = args.data_root
    elif cfg.data.name == "procedural":
        overrides["data.root"] = str(workdir / "data")
    if args.batch:
        overrides["optim.batch_size"] = args.batch
    if args.preset:
        overrides["model.preset"] = args.preset
    if args.loader_workers is not None:
        overrides["data.loader_workers"] = args.loader_workers
    return cfg.with_overrides(**overrides)


def _summary(history: list[dict], t_call: float) -> dict:
    first = history[0]
    startup = first["reported_at"] - first["eval_seconds"] - first["train_seconds"] - t_call
    later = history[1:] or history
    samples = sum(h["samples_per_second"] * h["train_seconds"] for h in later)
    seconds = sum(h["train_seconds"] for h in later)
    cpu = sum(h.get("cpu_seconds", 0.0) for h in later)
    return {"startup_s": startup, "samples_per_s": samples / seconds, "timed_s": seconds, "cpu_per_wall": cpu / seconds,
            "epochs_timed": len(later), "mAP@all": history[-1]["mAP@all"]}


def run_plain(cfg, threads: int) -> dict:
    import torch

    from dmwan_qdrant.training.loop import train_local

    torch.set_num_threads(threads)
    history: list[dict] = []
    t_call = time.time()
    train_local(cfg, device="cuda" if cfg.scaling.use_gpu else "cpu", on_epoch=history.append)
    return _summary(history, t_call)


def run_ray(cfg) -> dict:
    from dmwan_qdrant.training.trainer import fit

    t_call = time.time()
    fit(cfg, printer=lambda line: None)
    history = json.loads((cfg.run_dir / "history.json").read_text())
    return _summary(history, t_call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "training/configs/procedural_tiny.yaml"))
    parser.add_argument("--data-root", default=None, help="dataset root (procedural data is generated in --workdir)")
    parser.add_argument("--preset", default=None, help="model preset instead of the config's")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per arm; all but the first are timed")
    parser.add_argument("--steps", type=int, default=60, help="steps per epoch")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (= the Ray worker's CPUs)")
    parser.add_argument("--loader-workers", type=int, default=None)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--worker-niceness", type=int, default=None,
                        help="RAY_worker_niceness for the local cluster (Ray's default is 15)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep data and runs here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dmwan-ray-bench-"))
    if args.worker_niceness is not None:
        os.environ["RAY_worker_niceness"] = str(args.worker_niceness)
    from dmwan_qdrant.training.data import prepare_split

    plain_cfg = _config(args, workdir, "plain")
    ray_cfg = _config(args, workdir, "ray")
    for cfg in (plain_cfg, ray_cfg):
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
    prepare_split(plain_cfg)  # generate the data once, outside both timings

    print(f"config {args.config}: preset {plain_cfg.model.preset}, batch {plain_cfg.optim.batch_size}, "
          f"{args.epochs} epochs x {args.steps} steps, {args.threads} threads, {'GPU' if args.gpu else 'CPU'}")
    plain = run_plain(plain_cfg, args.threads)
    print(f"plain loop : start-up {plain['startup_s']:5.1f} s   {plain['samples_per_s']:7.1f} quad/s "
          f"over {plain['timed_s']:.0f} s ({plain['epochs_timed']} epochs), {plain['cpu_per_wall']:.2f} cores busy", flush=True)
    ray = run_ray(ray_cfg)
    print(f"Ray Train  : start-up {ray['startup_s']:5.1f} s   {ray['samples_per_s']:7.1f} quad/s "
          f"over {ray['timed_s']:.0f} s ({ray['epochs_timed']} epochs), {ray['cpu_per_wall']:.2f} cores busy")
    print(f"ratio Ray/plain samples/s: {ray['samples_per_s'] / plain['samples_per_s']:.3f}   "
          f"(same result: mAP@all {plain['mAP@all']:.4f} vs {ray['mAP@all']:.4f})")
    print(json.dumps({"plain": plain, "ray": ray}))


if __name__ == "__main__":
    main()
