"""A PNG of a run's loss, and its unseen-class and validation mAP, per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def plot_history(history: Sequence[dict[str, Any]], out: str | Path, title: str = "") -> Path:
    """Plot training loss, unseen-class mAP@all / P@100 and validation mAP@all against epochs
    into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key in ("loss", "loss_quadruplet", "loss_semantic", "loss_token"):
        if all(key in h for h in history):
            ax_loss.plot(epochs, [h[key] for h in history], marker="o", label=key.replace("loss_", ""))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("training loss")
    ax_loss.legend(fontsize=8)
    for key, label in (("mAP@all", "test mAP@all"), ("P@100", "test P@100"), ("val mAP@all", "validation mAP@all")):
        if any(key in h for h in history):
            ax_map.plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", label=label)
    ax_map.set_xlabel("epoch")
    ax_map.set_title("unseen test and validation classes")
    ax_map.set_ylim(0, 1)
    ax_map.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
