"""Which per-sample score of a trained model could single out the bad training sketches?

Usage::

    python benchmarks/ablation.py --variants full --low-quality 0.3 --seeds 0 1 2 3
    python benchmarks/quality_scores.py /tmp/dmwan-ablation-procedural_tiny/bundles/full-lq30-s*

For each bundle (trained on a generated benchmark: its card names the data and the validation
classes held out), every training sketch is scored several ways with the bundle's embeddings, and
each score's AUC against the manifest's ground truth is printed, for all the low-quality sketches
and per kind (over-abstract sketches, sketches with one part taken from another class). 0.5 is
chance; 1.0 puts every bad sketch below every clean one. The weighting can only be as good as the
best of these: a score that cannot tell a kind of bad sketch from a clean one cannot weigh it down.

Scores (a sketch against its own class unless said):

- ``weighting``: what the weighting's memory holds (`sample_quality`: cosine with the class's
  photo centroid, plus the text agreement, standardised within the class);
- ``photo centroid``: the cosine with the class's photo centroid alone;
- ``margin``: that cosine minus the best cosine with another class's photo centroid;
- ``kNN``: the share of the sketch's 10 nearest training photos that are of its class;
- ``sketch centroid``: the cosine with the class's sketch centroid;
- ``token mean`` / ``token worst``: each sketch token's best cosine among all the class's photo
  tokens, averaged over the tokens / the worst token (a part no photo of the class has).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCORES = ("weighting", "photo centroid", "margin", "kNN", "sketch centroid", "token mean", "token worst")


def sketch_scores(model, split) -> dict[str, list[float]]:
    """Every score of `SCORES` for each training sketch of ``split`` (in its order)."""
    import torch
    import torch.nn.functional as F

    from dmwan_qdrant.eval.evaluate import embed_samples
    from dmwan_qdrant.eval.quality import sample_quality

    classes = split.seen_classes
    index = {c: i for i, c in enumerate(classes)}
    sketches, photos = split.train_sketches, split.train_photos
    s = embed_samples(model, sketches, "sketch", 256)
    p = embed_samples(model, photos, "photo", 256)
    ls = torch.tensor([index[x.label] for x in sketches])
    lp = torch.tensor([index[x.label] for x in photos])

    def centroids(emb, labels):
        return F.normalize(torch.zeros(len(classes), emb.shape[1]).index_add_(0, labels, emb), dim=-1)

    rows = torch.arange(len(sketches))
    to_photo = s.global_ @ centroids(p.global_, lp).t()
    own = to_photo[rows, ls]
    others = to_photo.clone()
    others[rows, ls] = -2.0
    nearest = (s.global_ @ p.global_.t()).topk(min(10, len(photos)), dim=1).indices
    class_tokens = {c: p.tokens[lp == c].reshape(-1, p.tokens.shape[-1]) for c in range(len(classes))}
    best = torch.stack([(s.tokens[i] @ class_tokens[int(ls[i])].t()).max(dim=1).values for i in rows])
    weighting, _ = sample_quality(model, sketches, photos, classes)
    out = {
        "weighting": weighting, "photo centroid": own, "margin": own - others.max(dim=1).values,
        "kNN": (lp[nearest] == ls[:, None]).float().mean(dim=1),
        "sketch centroid": (s.global_ * centroids(s.global_, ls)[ls]).sum(-1),
        "token mean": best.mean(dim=1), "token worst": best.min(dim=1).values,
    }
    return {k: [float(v) for v in out[k]] for k in SCORES}


def bundle_aucs(bundle: Path) -> tuple[str, dict[str, dict[str, float]]]:
    """The run name of ``bundle`` and, per score, its AUC for all bad sketches and per kind."""
    from dmwan_qdrant.data import load_benchmark
    from dmwan_qdrant.eval.quality import low_quality_auc
    from dmwan_qdrant.model import card_of, load_model, read_bundle_record

    training = card_of(read_bundle_record(bundle)).get("training") or {}
    root = Path(training.get("root") or "")
    manifest = json.loads((root / "manifest.json").read_text())
    full = load_benchmark(training["dataset"], root)
    held = set(training.get("validation_classes") or [])  # never trained on: not training samples
    split = SimpleNamespace(seen_classes=[c for c in full.seen_classes if c not in held],
                            train_sketches=[x for x in full.train_sketches if x.label not in held],
                            train_photos=[x for x in full.train_photos if x.label not in held])
    model = load_model(bundle)
    scores = sketch_scores(model, split)
    low, details = set(manifest.get("low_quality") or []), manifest.get("low_quality_details") or {}
    kinds = []
    for sample in split.train_sketches:
        rel = str(Path(sample.path).relative_to(root))
        kinds.append(details.get(rel, {}).get("kind", "low quality") if rel in low else "clean")
    out: dict[str, dict[str, float]] = {}
    for name, values in scores.items():
        clean = [v for v, k in zip(values, kinds) if k == "clean"]
        groups = {"all": [v for v, k in zip(values, kinds) if k != "clean"]}
        for kind in sorted({k for k in kinds if k != "clean"}):
            groups[kind] = [v for v, k in zip(values, kinds) if k == kind]
        out[name] = {g: auc for g, vs in groups.items() if (auc := low_quality_auc(vs, clean)) is not None}
    return training.get("run") or bundle.name, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", type=Path, help="bundles trained on a generated benchmark")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results = [bundle_aucs(b) for b in args.bundles]
    groups = list(results[0][1][SCORES[0]])
    for run, aucs in results:
        print(f"{run}: " + "; ".join(f"{name} " + " ".join(f"{g} {aucs[name][g]:.2f}" for g in groups)
                                     for name in SCORES))
    print(f"\nAUC of each score, mean ± sd over {len(results)} bundles:\n")
    print("| score | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for name in SCORES:
        cells = []
        for g in groups:
            values = [aucs[name][g] for _, aucs in results if g in aucs[name]]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.2f} ± {sd:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
