"""Training entry point, the same locally and under `ray job submit`.

    python -m dmwan_qdrant.training.train --config training/configs/procedural_tiny.yaml
    ray job submit --working-dir . -- python -m dmwan_qdrant.training.train --config <file>

Against a running cluster (``RAY_ADDRESS`` set, as ``ray job submit`` does) it joins that cluster;
otherwise it starts a local one for the run.
"""

from __future__ import annotations

import argparse
import json
import sys

from pathlib import Path

from dmwan_qdrant.errors import DmwanError, UsageError

from .config import TrainConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dmwan_qdrant.training.train", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML or JSON training config, or a shipped config's name")
    p.add_argument("--data", help="train on this folder: photo/<class>/ and sketch/<class>/")
    p.add_argument("--preset", help="the model to build (with --data): tiny, vit_b16, ...")
    p.add_argument("--pretrained", help="the preset's weights: an open_clip tag, a weights file, or 'hub' (timm)")
    p.add_argument("--init", help="fine-tune this bundle (a folder or hf-hub:ORG/NAME)")
    p.add_argument("--unseen", type=int, help="hold out this many classes by seed (with --data)")
    p.add_argument("--workers", type=int, help="Ray Train workers (overrides the config)")
    p.add_argument("--gpus", action="store_true", help="one GPU per worker")
    p.add_argument("--cpus-per-worker", type=float)
    p.add_argument("--epochs", type=int)
    p.add_argument("--name", help="run name; a run with the same name resumes")
    p.add_argument("--storage-path", help="folder holding runs")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local cluster)")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: the ``--config`` file, else a folder run (`recipe.folder_config`), with
    the options given on the command line over it."""
    from .recipe import _absolute, folder_config

    get = lambda key: getattr(args, key, None)  # noqa: E731  (callers may build a partial Namespace)
    pretrained = get("pretrained")
    if pretrained and Path(pretrained).expanduser().is_file():
        pretrained = str(Path(pretrained).expanduser().resolve())  # Ray workers may run elsewhere
    if get("config"):
        cfg = TrainConfig.from_file(args.config)
    elif get("data"):
        cfg = folder_config(args.data, get("preset"), pretrained, get("init"), get("unseen") or 0, get("name"))
    else:
        raise UsageError("give --config (a shipped name or a file; see `dmwan configs`), or --data DIR "
                         "with --preset NAME or --init BUNDLE")
    if get("config") and get("data"):
        cfg = cfg.with_overrides(**{"data.name": "folder", "data.root": str(Path(args.data).expanduser().resolve())})
    overrides = {
        "model.preset": get("preset") if get("config") else None,
        "model.pretrained": pretrained if get("config") else None,
        "model.init": _absolute(get("init")) if get("config") else None,
        "data.unseen": get("unseen") if get("config") else None,
        "scaling.workers": args.workers,
        "scaling.cpus_per_worker": args.cpus_per_worker,
        "optim.epochs": args.epochs,
        "name": args.name,
        "storage_path": args.storage_path,
        "scaling.use_gpu": True if args.gpus else None,
    }
    return cfg.with_overrides(**{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from .trainer import fit

        cfg = config_from_args(args)
        summary = fit(cfg, address=args.address)
    except DmwanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
