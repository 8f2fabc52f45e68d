"""The Ray Train driver: builds the TorchTrainer, runs it, exports the best model bundle."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from dmwan_qdrant.errors import DmwanError
from dmwan_qdrant.model.card import CARD_METRICS, card_of, write_card
from dmwan_qdrant.model.checkpoint import read_bundle_record
from dmwan_qdrant.ray_runtime import QUIET_ENV, init_ray

from .config import TrainConfig
from .data import prepare_split
from .loop import BEST_DIR, PROGRESS_FILE, VAL, train_loop_per_worker
from .plot import plot_history

class TrainingError(DmwanError):
    """A training run that failed after its retries."""

    exit_code = 12


def format_progress(m: dict[str, Any]) -> str:
    """One readable line per epoch: loss, weight statistics, validation and unseen-class
    metrics, how the weighting ranks the bad samples, speed."""
    parts = [f"epoch {m['epoch']:>3}", f"loss {m.get('loss', float('nan')):.4f}"]
    if "w_std" in m:
        parts.append(f"w {m['w_min']:.2f}-{m['w_max']:.2f} (sd {m['w_std']:.2f})")
    if VAL + "mAP@all" in m:
        parts.append(f"val mAP@all {m[VAL + 'mAP@all']:.4f}")
    if "mAP@all" in m:
        parts.append(f"test mAP@all {m['mAP@all']:.4f}  P@100 {m['P@100']:.4f}  mAP@200 {m['mAP@200']:.4f}")
    if "lq_auc_sketch" in m or "lq_auc_photo" in m:
        aucs = [f"{k} {m[f'lq_auc_{k}']:.2f}" for k in ("sketch", "photo") if f"lq_auc_{k}" in m]
        parts.append("low-quality AUC " + " ".join(aucs))
    parts.append(f"{m.get('samples_per_second', 0):.0f} quad/s")
    return "  ".join(parts)


class _ProgressTail(threading.Thread):
    """Prints the progress lines rank 0 appends to the run folder, as they arrive."""

    def __init__(self, path: Path, printer: Callable[[str], None]) -> None:
        super().__init__(daemon=True)
        self.path, self.printer = path, printer
        self.offset = path.stat().st_size if path.exists() else 0
        self.stop = threading.Event()

    def poll(self) -> None:
        if not self.path.exists():
            return
        with open(self.path) as f:
            f.seek(self.offset)
            for line in f:
                if line.endswith("\n"):
                    self.offset += len(line.encode())
                    self.printer(format_progress(json.loads(line)))

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.poll()


def _init_ray(cfg: TrainConfig, address: str | None) -> None:
    cpus = max(os.cpu_count() or 1, int(cfg.scaling.workers * cfg.scaling.cpus_per_worker + 0.999))
    init_ray(address, num_cpus=cpus)


def fit(
    cfg: TrainConfig,
    address: str | None = None,
    printer: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) a training run with Ray Train and export its best epoch.

    A run with the same ``name`` and ``storage_path`` resumes from its last checkpoint. After
    training, ``<run_dir>/model`` holds the best epoch's bundle (for ``dmwan ingest --model``),
    ``<run_dir>/history.json`` every epoch's metrics and ``<run_dir>/training.png`` the plot.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    split = prepare_split(cfg)  # generate the data once here, not in every worker
    printer(f"data: {split.summary()}")
    _init_ray(cfg, address)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=cfg.to_dict(),
        scaling_config=ScalingConfig(
            num_workers=cfg.scaling.workers,
            use_gpu=cfg.scaling.use_gpu,
            resources_per_worker={"CPU": cfg.scaling.cpus_per_worker, **({"GPU": 1} if cfg.scaling.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=cfg.name,
            storage_path=str(run_dir.parent),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=cfg.scaling.max_failures),
        ),
    )
    tail = _ProgressTail(run_dir / PROGRESS_FILE, printer)
    tail.start()
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps worker errors in several types
        raise TrainingError(f"training run {cfg.name!r} failed: {str(exc).splitlines()[0]}") from exc
    finally:
        tail.stop.set()
        tail.join()
        tail.poll()
    if result.error is not None:
        raise TrainingError(f"training run {cfg.name!r} failed: {result.error}")
    return export_run(cfg, result.checkpoint, time.perf_counter() - t_start)


def export_run(cfg: TrainConfig, checkpoint, seconds: float) -> dict[str, Any]:
    """Copy the best bundle out of the last checkpoint; write history.json and the plot."""
    import torch

    run_dir = cfg.run_dir
    if checkpoint is None:
        raise TrainingError(f"training run {cfg.name!r} reported no checkpoint")
    with checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / "state.pt", map_location="cpu", weights_only=False)["run"]
        target = run_dir / "model"
        tmp = run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(Path(folder) / BEST_DIR, tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    history = state["history"]
    card = card_of(read_bundle_record(target))
    if card.get("training"):
        card["training"]["epochs"] = len(history)  # a resumed run may have gone on past its first plan
        write_card(target, card)
    (run_dir / "history.json").write_text(json.dumps(history, indent=2))
    plot = plot_history(history, run_dir / "training.png", title=cfg.name)
    best = next(h for h in history if h["epoch"] == state["best_epoch"])

    def pick(metrics: dict[str, Any], prefix: str = "") -> dict[str, float] | None:
        picked = {k: metrics[prefix + k] for k in CARD_METRICS if prefix + k in metrics}
        return picked or None

    # "best" is the exported (selected) epoch's unseen test figures; "validation" is what chose it.
    return {"run_dir": str(run_dir), "model": str(run_dir / "model"), "plot": str(plot),
            "best_epoch": state["best_epoch"], "selected_by": card.get("training", {}).get("selected_by"),
            "best": pick(best), "validation": pick(best, VAL), "last": pick(history[-1]),
            "epochs": len(history), "seconds": seconds}
