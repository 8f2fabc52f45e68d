"""The training loop: one epoch function shared by Ray Train workers and a plain local loop.

``train_loop_per_worker`` is Ray Train's idiom (prepare_model, prepare_data_loader, one
``ray.train.report`` per epoch with a checkpoint). ``train_local`` runs the same epochs in this
process without Ray, for tests and for measuring what Ray costs.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from dmwan_qdrant.data import QuadrupletDataset
from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.eval.evaluate import embed_classes, evaluate_split
from dmwan_qdrant.eval.metrics import METRICS
from dmwan_qdrant.eval.quality import sample_quality, weighting_quality
from dmwan_qdrant.eval.rerank import choose_rerank
from dmwan_qdrant.model import DMWAN, ModelConfig, create_model, get_preset, load_model, save_model
from dmwan_qdrant.model.factory import resolve_pretrained

from .cards import VAL, epoch_card, run_card, selection_score
from .config import TrainConfig
from .data import prepare_split

STATE_FILE = "state.pt"
MODEL_DIR = "model"
BEST_DIR = "best"
PROGRESS_FILE = "progress.jsonl"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(model: DMWAN, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no decay on norms, biases and embeddings) with linear warmup then cosine decay."""
    o = cfg.optim
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2 and "embedding" not in name
        backbone = name.startswith("visual.")
        groups.setdefault((decay, backbone), []).append(p)
    param_groups = [
        {"params": ps, "weight_decay": o.weight_decay if decay else 0.0, "lr": o.lr * (o.backbone_lr_scale if bb else 1.0)}
        for (decay, bb), ps in groups.items()
    ]
    optimizer = torch.optim.AdamW(param_groups, lr=o.lr)
    total = max(1, o.epochs * o.steps_per_epoch)

    def schedule(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        progress = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


@dataclass
class RunState:
    """What a checkpoint restores besides the weights."""

    epoch: int = 0
    best_map: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WorkerContext:
    """How the epoch loop talks to its runtime (Ray Train or plain)."""

    rank: int
    world_size: int
    device: torch.device
    prepare_model: Callable[[torch.nn.Module], torch.nn.Module]
    prepare_loader: Callable[[DataLoader], DataLoader]
    #: Called once per epoch with the metrics and a checkpoint folder (rank 0) or None.
    report: Callable[[dict[str, Any], Path | None], None]
    #: The folder of the checkpoint to resume from, or None. `run_training` moves it on to each
    #: epoch's checkpoint folder and discards the one before (`discard_checkpoint`), so at the
    #: end it is the last epoch's, for the caller to read and then discard.
    resume_dir: Path | None


def build_model(cfg: TrainConfig) -> DMWAN:
    """The model a run starts from: the ``init`` bundle to fine-tune, or the preset's towers.

    Raises:
        UsageError: ``init`` together with architecture overrides (a bundle keeps its own).
    """
    m = cfg.model
    if not m.init:
        pretrained = resolve_pretrained(m.preset, m.pretrained)
        return create_model(m.preset, pretrained, m.text_pretrained, m.overrides, seed=cfg.seed)
    if m.overrides:
        raise UsageError("model.overrides do not apply to a fine-tuned bundle (init): it keeps its architecture")
    from dmwan_qdrant.encoder import load_bundle

    from dmwan_qdrant.model.sentence import finetune_anchors

    model = load_bundle(m.init, "cpu", runtime="torch")
    model.config, _ = finetune_anchors(model.config)  # the bundle records what the run trained with
    model.weighting.reset_statistics()  # other data: the score statistics and warmup start afresh
    return model


def finetuned_config(init: str) -> tuple[ModelConfig, str | None]:
    """The architecture a run fine-tuning the bundle ``init`` trains, and a note on what it
    changes (`dmwan_qdrant.model.sentence.finetune_anchors`), or None."""
    from dmwan_qdrant.encoder import load_bundle_record
    from dmwan_qdrant.model.sentence import finetune_anchors

    return finetune_anchors(ModelConfig.from_dict(load_bundle_record(init)["model"]))


def model_config_of(cfg: TrainConfig) -> ModelConfig:
    """The architecture a run trains, without building it."""
    if cfg.model.init:
        return finetuned_config(cfg.model.init)[0]
    return get_preset(cfg.model.preset).with_overrides(cfg.model.overrides)


def run_training(cfg: TrainConfig, ctx: WorkerContext) -> RunState:
    """Train for ``cfg.optim.epochs`` epochs from ``ctx.resume_dir`` (if any); returns the state."""
    seed_everything(cfg.seed)
    split = prepare_split(cfg)
    model = build_model(cfg)
    start = model  # the starting weights, which knowledge preservation keeps photos near
    card = run_card(cfg, split, model if cfg.model.init else None)
    state = RunState()
    optimizer_state = scheduler_state = None
    if ctx.resume_dir is not None:
        model = load_model(ctx.resume_dir / MODEL_DIR)
        saved = torch.load(ctx.resume_dir / STATE_FILE, map_location="cpu", weights_only=False)
        state = RunState(**saved["run"])
        optimizer_state, scheduler_state = saved["optimizer"], saved["scheduler"]
        weighting_state = saved.get("weighting")
    model.set_class_names(split.seen_classes)
    if model.config.preserve_weight:
        model.attach_teacher(start)
    model.weighting.resize_memory(len(split.train_sketches), len(split.train_photos), len(split.seen_classes))
    if ctx.resume_dir is not None and weighting_state is not None:
        model.weighting.load_training_state(weighting_state)
    model.train()
    core = model
    optimizer, scheduler = build_optimizer(core, cfg)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        scheduler.load_state_dict(scheduler_state)
    model = ctx.prepare_model(model)

    o = cfg.optim
    dataset = QuadrupletDataset(
        split.train_photos,
        split.train_sketches,
        core.transform("photo", train=True),
        core.transform("sketch", train=True),
        length=o.steps_per_epoch * o.batch_size * ctx.world_size,
        seed=cfg.seed,
        classes=split.seen_classes,  # label indices must match the model's class anchors
    )
    loader = DataLoader(
        dataset,
        batch_size=o.batch_size,
        shuffle=False,
        num_workers=cfg.data.loader_workers,
        persistent_workers=cfg.data.loader_workers > 0,
        drop_last=True,
    )
    loader = ctx.prepare_loader(loader)
    use_amp = ctx.device.type == "cuda"

    for epoch in range(state.epoch, o.epochs):
        if _on_every_worker(stopped_early(state, o.patience), ctx):
            break
        if epoch == cfg.fail_at_epoch and ctx.rank == 0:
            _fail_once(cfg)
        dataset.set_epoch(epoch)
        if epoch > 0 and core.config.use_weighting and core.config.weight_refresh == "epoch":
            core.weighting.refresh(*sample_quality(core, split.train_sketches, split.train_photos, split.seen_classes,
                                                   cfg.eval_batch_size))
            core.train()
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        t0, cpu0 = time.perf_counter(), time.process_time()
        sums: dict[str, float] = {}
        steps = samples = 0
        for batch in loader:
            batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                out = model(
                    batch["sketch"], batch["photo"], batch["neg_photo"], batch["neg_sketch"],
                    batch["label"], batch["neg_label"], batch["sketch_index"], batch["photo_index"],
                )
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if o.grad_clip:
                torch.nn.utils.clip_grad_norm_(core.parameters(), o.grad_clip)
            optimizer.step()
            scheduler.step()
            steps += 1
            samples += batch["sketch"].shape[0]
            for k, v in out.items():
                if k.startswith("loss"):
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            for k, v in core.weight_statistics(out["weights"]).items():
                sums[k] = sums.get(k, 0.0) + v
        train_time = time.perf_counter() - t0
        cpu_time = time.process_time() - cpu0  # all threads of this process
        metrics: dict[str, Any] = {k: v / max(1, steps) for k, v in sums.items()}
        metrics.update(epoch=epoch + 1, steps=steps, train_seconds=train_time, cpu_seconds=cpu_time,
                       samples_per_second=samples * ctx.world_size / max(train_time, 1e-9),
                       lr=scheduler.get_last_lr()[0])
        checkpoint_dir = None
        if ctx.rank == 0:
            t_eval = time.perf_counter()
            metrics.update(evaluate_split(core, split, batch_size=cfg.eval_batch_size))
            val_set = None
            if split.validation_classes:  # embedded once: scored, then (if selected) the re-rank choice
                val_set = embed_classes(core, split, "validation", cfg.eval_batch_size)
                val = evaluate_split(core, split, classes="validation", embedded=val_set)
                metrics.update({VAL + k: val[k] for k in METRICS})
            metrics.update(weighting_quality(core, split))
            score = selection_score(metrics)
            improved = score is None or score > state.best_map
            # The bundle this epoch would export chooses its re-rank default on the validation classes.
            rerank = choose_rerank(core, split, embedded=val_set) if improved and val_set is not None else None
            metrics["eval_seconds"] = time.perf_counter() - t_eval
            metrics["reported_at"] = time.time()  # wall clock, to tell start-up from training
            core.train()
            state.epoch = epoch + 1
            state.history.append(metrics)
            if improved:
                state.best_map, state.best_epoch = (score if score is not None else -1.0), epoch + 1
            checkpoint_dir = _write_checkpoint(core, optimizer, scheduler, state, improved, ctx.resume_dir, cfg,
                                               epoch_card(card, state.epoch, metrics, rerank))
            _append_progress(cfg, metrics)
        ctx.report(metrics, checkpoint_dir)
        if checkpoint_dir is not None:
            # Reported (Ray has copied it to the run's storage) and superseded: each epoch's folder
            # holds two bundles and the optimizer state, far too much to leave in the temp dir.
            discard_checkpoint(ctx.resume_dir)
            ctx.resume_dir = checkpoint_dir
    return state


def stopped_early(state: RunState, patience: int) -> bool:
    """Whether ``patience`` epochs in a row have passed without a better validation score."""
    return bool(patience) and state.best_epoch > 0 and state.epoch - state.best_epoch >= patience


def _on_every_worker(decision: bool, ctx: WorkerContext) -> bool:
    """Rank 0's ``decision`` (only rank 0 scores the epochs), the same on every worker."""
    if ctx.world_size == 1 or not torch.distributed.is_initialized():
        return decision
    flag = torch.tensor([int(decision)], device=ctx.device)
    torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())


#: Prefixes of the temporary checkpoint folders this module makes (and may therefore delete).
TEMP_PREFIXES = ("dmwan-ckpt-", "dmwan-resume-")


def discard_checkpoint(folder: Path | None) -> None:
    """Delete a temporary checkpoint folder this module made; any other folder is left alone."""
    if folder is not None and folder.name.startswith(TEMP_PREFIXES):
        shutil.rmtree(folder, ignore_errors=True)


def _write_checkpoint(model, optimizer, scheduler, state: RunState, improved: bool, previous: Path | None, cfg,
                      card: dict[str, Any]) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="dmwan-ckpt-"))
    meta = {"run": cfg.name, "epoch": state.epoch, "dataset": cfg.data.name, "split": cfg.data.split, "card": card}
    save_model(model, folder / MODEL_DIR, metadata=meta)
    torch.save(
        {"run": state.__dict__, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
         "weighting": model.weighting.training_state(), "config": cfg.to_dict()},
        folder / STATE_FILE,
    )
    best_src = folder / MODEL_DIR if improved else (previous / BEST_DIR if previous else None)
    if best_src is not None and best_src.exists():
        shutil.copytree(best_src, folder / BEST_DIR)
    return folder


def _append_progress(cfg: TrainConfig, metrics: dict[str, Any]) -> None:
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.run_dir / PROGRESS_FILE, "a") as f:
        f.write(json.dumps(metrics) + "\n")


def _fail_once(cfg: TrainConfig) -> None:
    """Kill this process the first time (a real crash: no exception handling, no cleanup)."""
    marker = cfg.run_dir / ".failed_once"
    if marker.exists():
        return
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry: run the epochs on this worker and report each one."""
    import ray.train
    import ray.train.torch

    cfg = TrainConfig.from_dict(config)
    context = ray.train.get_context()
    checkpoint = ray.train.get_checkpoint()
    resume_dir = None
    if checkpoint is not None:
        resume_dir = Path(tempfile.mkdtemp(prefix="dmwan-resume-"))
        checkpoint.to_directory(str(resume_dir))
    # Token heads take no gradient when neither the local block nor the token loss uses them.
    model_cfg = model_config_of(cfg)
    find_unused = not (model_cfg.use_local or model_cfg.token_loss_weight)

    def report(metrics: dict[str, Any], folder: Path | None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(str(folder)) if folder is not None else None
        ray.train.report(metrics, checkpoint=ckpt)

    ctx = WorkerContext(
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        device=ray.train.torch.get_device(),
        prepare_model=lambda m: ray.train.torch.prepare_model(
            m, parallel_strategy_kwargs={"find_unused_parameters": find_unused}
        ),
        prepare_loader=ray.train.torch.prepare_data_loader,
        report=report,
        resume_dir=resume_dir,
    )
    torch.set_num_threads(max(1, int(cfg.scaling.cpus_per_worker)))
    try:
        run_training(cfg, ctx)
    finally:
        discard_checkpoint(ctx.resume_dir)  # the last one is in the run's storage now


def train_local(cfg: TrainConfig, device: str = "cpu", on_epoch: Callable[[dict], None] | None = None) -> tuple[DMWAN, RunState]:
    """The same training without Ray, in this process; returns the best model and the state."""
    last: dict[str, Path | None] = {"dir": None}

    def report(metrics: dict[str, Any], folder: Path | None) -> None:
        last["dir"] = folder
        if on_epoch is not None:
            on_epoch(metrics)

    ctx = WorkerContext(0, 1, torch.device(device), lambda m: m.to(device), lambda dl: dl, report, None)
    try:
        state = run_training(cfg, ctx)
        best = load_model(last["dir"] / BEST_DIR) if last["dir"] is not None else None
    finally:
        discard_checkpoint(ctx.resume_dir)
    return best, state
