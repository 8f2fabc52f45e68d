"""Real-photo benchmark: line-drawing icons (the sketches) searching real photographs.

A small, honest check of sketch-to-photo retrieval on real photos, built from registry packages
only. It is an evaluation set: never used for training, for choosing an epoch or for tuning.

- Photos: Debian package ``gcompris-qt-data`` 3.1-2 (``apt-get download``); its images sit in Qt
  resource files (``/usr/share/gcompris-qt/rcc/*.rcc``, read by `rcc_files`). Taken: the photos
  that name one thing each, in ``categorization`` (tools, others, renewable), ``erase`` (animals),
  ``explore_world_animals`` and ``explore_farm_animals``; not monuments, unnamed fishes, paintings
  or drawings. Class = file name less its digits, camelCase split (``measuringTape2``:
  ``measuring_tape``), then `CLASS_OF`. Licences (``OUT/manifest.json``, per file): the README
  beside each image in the same .rcc; Wikimedia Commons and publicdomainpictures.net photos, mostly
  public domain and CC0-1.0, some CC-BY-SA-4.0, CC-BY-2.0, CC-BY-3.0, one GPLv2+. (The package's
  debian/copyright describes older .jpg versions of these files: other photos.)
- Sketches: line icons of npm ``@iconify-json`` sets (`SKETCH_SETS`; Streamline CC BY 4.0, IconPark
  Apache-2.0), filled variants (``-bold``, ``-solid``, ``-remix``) left out, drawn at 224 px. A
  class takes every icon whose `concept` is its name or one of its `SYNONYMS`.
- Layout: ``OUT/photo/<class>/`` (every named photo, RGB PNG, long side at most 512 px),
  ``OUT/sketch/<class>/<set>-<icon>.png``, ``OUT/zeroshot/unseen_classes.txt`` (the classes with a
  sketch and a photo: the scored ones); photos of the other classes stay as distractors. "Unseen":
  the photos are never trained on; a model trained on these icon sets may know classes and sketches.
- Score: every sketch of a scored class queries every photo (distractors included): mAP@all
  plain (non-interpolated AP), mAP@all interpolated, P@10 and top-1.

    python benchmarks/real_photos.py --out data/real-photos --models /tmp/effnet-untrained-rp dmwan-sketch

A second source, ``--source scratch``: the cut-out photographs among Scratch 1.4's costumes
(Debian ``scratch``, ``/usr/share/scratch/Media/Costumes``; MIT, CC-BY-SA-3.0): single things on
transparent backgrounds (a cow, an elephant, ants, a fire hydrant, a bus, cars, a sailing boat),
the files listed in `SCRATCH_PHOTOS` (chosen by looking at them, before any score: the drawn
costumes left out), searched by the same line icons. Every Scratch photo is in the gallery; the
ones without an icon of their class are distractors.

    python benchmarks/real_photos.py --source scratch --out data/cutout-photos --models dmwan-sketch
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import struct
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dmwan_qdrant.data.debian import CACHE, fetch_deb  # noqa: E402
from dmwan_qdrant.data.iconsets import class_name, concept, fetch, icon_svg, licence_of, render  # noqa: E402
from dmwan_qdrant.encoder import load_bundle  # noqa: E402
from dmwan_qdrant.errors import DatasetError  # noqa: E402
from dmwan_qdrant.eval.metrics import retrieval_metrics  # noqa: E402
from dmwan_qdrant.runtime import as_array  # noqa: E402

PACKAGE, VERSION = "gcompris-qt-data", "3.1-2"
#: The photos taken: .rcc file -> path of the photos inside it.
PHOTO_PATHS: dict[str, re.Pattern] = {
    "categorization": re.compile(r"categorization/resource/images/(tools|others|renewable)/[^/]+\.webp$"),
    "erase": re.compile(r"erase/resource/[^/]+\.webp$"),
    "explore_world_animals": re.compile(r"explore_world_animals/resource/animals/[^/]+\.webp$"),
    "explore_farm_animals": re.compile(r"explore_farm_animals/resource/animals/[^/]+\.webp$"),
}
#: Photo names -> class: plurals, spellings, and a thing named by its kind or its own word.
CLASS_OF = {"camels": "camel", "meerkats": "meerkat", "swans": "swan", "spoonbills": "spoonbill",
            "erasers": "eraser", "spoons": "spoon", "chamaeleon": "chameleon", "screw_driver": "screwdriver",
            "plier": "pliers", "tweezer": "tweezers", "kitten": "cat", "macaque": "monkey",
            "long_nosed_monkey": "monkey", "dragon": "komodo_dragon",  # a photo of a Komodo dragon
            "blackslate": "blackboard", "buffetset": "cup"}  # a cup and saucer
README_TYPOS = {"screDriver.webp": "screwDriver.webp"}  #: a README's misspelt file name -> the file
#: Line icon sets (npm, pinned): short name -> package.
SKETCH_SETS = {name: f"@iconify-json/{name}@{v}" for name, v in [
    ("streamline-freehand", "1.2.1"), ("streamline-ultimate", "1.2.2"), ("icon-park-outline", "1.2.4"),
    ("streamline", "1.2.5"), ("streamline-plump", "1.2.0"), ("streamline-flex", "1.2.3"),
    ("streamline-sharp", "1.2.0")]}
FILLED = re.compile(r"-(bold|solid|remix)$")
#: Class -> other icon concepts that name the same thing (written by hand, before any score).
SYNONYMS = {"measuring_tape": ["tape_measure"], "koala": ["koala_bear"], "knife": ["kitchen_knife"],
            "cup": ["tea_cup"], "solar": ["solar_energy"], "windmill": ["windmill_one"],
            "chair": ["chair_one"], "weighing_machine": ["tools_kitchen_scale"],
            "bulb": ["interface_lighting_light_bulb_lighting_light_incandescent_bulb_lights", "creativity_idea_bulb"],
            "hammer": ["interface_setting_hammer_construction_hammer_mallet_tool_tools_setting_edit_adjust",
                       "settings_hammer"],
            "wrench": ["interface_setting_wrench_crescent_tool_construction_tools_wrench_setting_edit_adjust"],
            "screwdriver": ["interface_setting_screwdriver_screwdriver_screw_tool_settings_hand"]}
#: Icons whose name matches but that draw another thing: (set, icon).
EXCLUDED_ICONS = {("icon-park-outline", "windmill")}  # a pinwheel toy
MAX_SIDE, SKETCH_SIZE = 512, 224
SCRATCH_PACKAGE, SCRATCH_VERSION = "scratch", "1.4.0.6~dfsg1-6.1"
SCRATCH_COSTUMES = "usr/share/scratch/Media/Costumes"
#: Scratch costumes that are photographs (folder/file) -> class. Written by looking at every
#: costume of Animals, Things and Transportation, before any score.
SCRATCH_PHOTOS = {
    "Animals/bird-flying.gif": "bird", "Animals/buffalo1.gif": "buffalo", "Animals/cow1.gif": "cow",
    "Animals/elephant.gif": "elephant", "Animals/insect1-a.gif": "ant", "Animals/insect1-b.gif": "ant",
    "Animals/insect2.gif": "ant", "Animals/squirrel1.png": "squirrel",
    "Things/cheesy-puffs.gif": "cheese_puffs", "Things/fire-hydrant.gif": "fire_hydrant",
    "Things/flower-vase.gif": "vase", "Things/fortune_cookie.gif": "fortune_cookie",
    "Things/fruit_platter.gif": "fruit_platter", "Things/hair1.gif": "wig", "Things/hair2.gif": "wig",
    "Things/lamp.gif": "lamp", "Things/lego.gif": "lego", "Things/marble-building.gif": "building",
    "Things/palmtree.gif": "palm_tree", "Things/scoreboard.gif": "scoreboard", "Things/trampoline.gif": "trampoline",
    "Things/umbrella.gif": "umbrella", "Things/manhole.png": "manhole", "Things/tennisball.png": "tennis_ball",
    "Things/rock.png": "rock", "Transportation/airplane.gif": "airplane", "Transportation/bike.gif": "bicycle",
    "Transportation/bus.gif": "bus", "Transportation/car-blue.gif": "car", "Transportation/car-bug.gif": "car",
    "Transportation/car-cow.gif": "car", "Transportation/sail-boat.gif": "sailboat",
    "Transportation/train.gif": "train", "Transportation/tug-boat.gif": "boat", "Transportation/yacht.gif": "ship",
    "Transportation/street-cleaner-mit.png": "street_sweeper",
}


class Picture(NamedTuple):
    """One image of the benchmark: its class, a file stem, the image, and what the manifest records."""
    label: str
    name: str
    image: Image.Image
    meta: dict = {}  # noqa: RUF012 (never changed)


def rcc_files(data: bytes) -> dict[str, bytes]:
    """Every file of a Qt binary resource (``.rcc``, format 1-3, zlib-compressed or stored)."""
    if data[:4] != b"qres":
        raise DatasetError("not a Qt resource file")
    u32 = lambda o: struct.unpack_from(">I", data, o)[0]  # noqa: E731
    version, tree, payload, names = u32(4), u32(8), u32(12), u32(16)
    node = 22 if version >= 2 else 14
    out: dict[str, bytes] = {}

    def walk(i: int, path: str) -> None:
        o = tree + i * node
        n = names + u32(o)
        name = data[n + 6:n + 6 + 2 * struct.unpack_from(">H", data, n)[0]].decode("utf-16-be") if i else ""
        flags, full = struct.unpack_from(">H", data, o + 4)[0], f"{path}/{name}".lstrip("/")
        if flags & 2:
            for child in range(u32(o + 10), u32(o + 10) + u32(o + 6)):
                walk(child, full)
            return
        d = payload + u32(o + 10)
        raw = data[d + 4:d + 4 + u32(d)]
        if flags & 4:
            raise DatasetError(f"{full}: zstd-compressed resources are not read")
        out[full] = zlib.decompress(raw[4:]) if flags & 1 else raw

    walk(0, "")
    return out


def label_of(file_name: str) -> str:
    """The class of a photo file: ``measuringTape2.webp`` -> ``measuring_tape``, then `CLASS_OF`."""
    stem = re.sub(r"\d+$", "", Path(file_name).stem)
    label = class_name(re.sub(r"([a-z])([A-Z])", r"\1_\2", stem))
    return CLASS_OF.get(label, label)


def readme_attribution(text: str) -> dict[str, dict[str, str]]:
    """File -> {copyright, licence, source} from a GCompris resource README (stanzas of
    ``Copyright:``, ``License:``, ``Source:`` and ``Files:`` lines)."""
    out: dict[str, dict[str, str]] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields, files = {}, []
        for line in stanza.splitlines():
            m = re.match(r"^(\w+):\s*(.*)$", line.strip())
            if m:
                fields[m.group(1).lower()] = m.group(2).strip()
                files += [m.group(2).strip()] if m.group(1) == "Files" and m.group(2).strip() else []
            elif line.strip():
                files.append(line.strip())
        licence = re.sub(r"(?i)^public domain$", "public-domain", fields.get("license", "?"))
        for f in files:
            out[README_TYPOS.get(f, f)] = {"copyright": fields.get("copyright", "?"), "licence": licence,
                                           "source": fields.get("source", "?")}
    return out


def fetch_package(cache: Path = CACHE) -> Path:
    """The unpacked ``gcompris-qt-data`` package (``apt-get download`` once into ``cache``)."""
    return fetch_deb(PACKAGE, VERSION, cache)


def gcompris_photos(root: Path) -> list[Picture]:
    """Every named photo of the package unpacked at ``root``, with its attribution."""
    photos = []
    for rcc, pattern in PHOTO_PATHS.items():
        files = rcc_files((root / "usr/share/gcompris-qt/rcc" / f"{rcc}.rcc").read_bytes())
        readmes = {p.rsplit("/", 1)[0]: readme_attribution(b.decode())
                   for p, b in files.items() if p.endswith("/README")}
        for path in sorted(p for p in files if pattern.search(p)):
            folder, file = path.rsplit("/", 1)
            credit = readmes.get(folder, {}).get(file, {"copyright": "?", "licence": "?", "source": "?"})
            photos.append(Picture(label_of(file), f"{rcc}-{Path(file).stem}", Image.open(io.BytesIO(files[path])),
                                  {"package": f"{PACKAGE} {VERSION}", "path": f"rcc/{rcc}.rcc:{path}", **credit}))
    return photos


def line_sketches(classes: Sequence[str]) -> list[Picture]:
    """Every line icon of `SKETCH_SETS` whose concept is one of ``classes`` or its `SYNONYMS`."""
    wanted = {c: c for c in classes} | {s: c for c in classes for s in SYNONYMS.get(c, [])}
    sketches = []
    for short, spec in SKETCH_SETS.items():
        icon_set = fetch(spec)
        for icon in sorted(icon_set["icons"]):
            label = wanted.get(concept(icon))
            if label and not FILLED.search(icon) and (short, icon) not in EXCLUDED_ICONS:
                sketches.append(Picture(label, f"{short}-{icon}", render(icon_svg(icon_set, icon), SKETCH_SIZE),
                                        {"package": spec, "icon": icon, "licence": licence_of(icon_set)}))
    return sketches


def _rgb(image: Image.Image, max_side: int) -> Image.Image:
    """RGB (transparency on white), long side at most ``max_side``."""
    image = image.convert("RGBA")
    flat = Image.new("RGB", image.size, (255, 255, 255))
    flat.paste(image, mask=image.getchannel("A"))
    flat.thumbnail((max_side, max_side), Image.LANCZOS)
    return flat


def write_benchmark(out: Path, photos: Sequence[Picture], sketches: Sequence[Picture],
                    about: dict | None = None) -> dict[str, Any]:
    """Write the layout (module docstring) into ``out`` (its photo/, sketch/ and zeroshot/ made
    anew) and its ``manifest.json`` (``about``, the scored and distractor classes, every file)."""
    for sub in ("photo", "sketch", "zeroshot"):
        shutil.rmtree(out / sub, ignore_errors=True)
    photo_classes = {p.label for p in photos}
    scored = sorted(photo_classes & {s.label for s in sketches})
    files: list[dict] = []
    for kind, items in (("photo", photos), ("sketch", [s for s in sketches if s.label in photo_classes])):
        for p in items:
            path = out / kind / p.label / f"{p.name}.png"
            if path.exists():
                raise ValueError(f"two {kind}s named {p.name!r} in class {p.label!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            _rgb(p.image, MAX_SIDE).save(path)
            files.append({"file": str(path.relative_to(out)), "kind": kind, "class": p.label, **p.meta})
    (out / "zeroshot").mkdir(parents=True)
    (out / "zeroshot" / "unseen_classes.txt").write_text("".join(c + "\n" for c in scored))
    count = Counter((f["kind"], f["class"]) for f in files)
    manifest = {**(about or {}),
                "scored_classes": {c: {"photos": count["photo", c], "sketches": count["sketch", c]} for c in scored},
                "distractor_classes": {c: count["photo", c] for c in sorted(photo_classes - set(scored))},
                "photo_licences": dict(Counter(f.get("licence", "?") for f in files if f["kind"] == "photo")),
                "sketch_licences": dict(Counter(f.get("licence", "?") for f in files if f["kind"] == "sketch")),
                "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _embed(embed: Any, paths: list[Path]) -> np.ndarray:
    chunks = [as_array(embed([Image.open(p).convert("RGB") for p in paths[i:i + 32]]).global_)
              for i in range(0, len(paths), 32)]
    vectors = np.concatenate(chunks)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def score(model: Any, folder: Path) -> dict[str, Any]:
    """Every sketch of the scored classes of ``folder`` against every photo (distractors included)."""
    scored = (folder / "zeroshot" / "unseen_classes.txt").read_text().split()
    gallery_classes = sorted(d.name for d in (folder / "photo").iterdir() if d.is_dir())
    index = {c: i for i, c in enumerate(gallery_classes)}
    queries = [(c, p) for c in scored for p in sorted((folder / "sketch" / c).glob("*.png"))]
    gallery = [(c, p) for c in gallery_classes for p in sorted((folder / "photo" / c).glob("*.png"))]
    q, g = _embed(model.embed_sketches, [p for _, p in queries]), _embed(model.embed_photos, [p for _, p in gallery])
    ql, gl = np.array([index[c] for c, _ in queries]), np.array([index[c] for c, _ in gallery])
    m = retrieval_metrics(q, ql, g, gl, per_query=True)
    top = np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :10]
    hits = gl[top] == ql[:, None]
    per_class = {c: round(float(m["ap_per_query"][ql == index[c]].mean()), 4) for c in scored}
    return {"mAP@all plain": m["mAP@all plain"], "mAP@all": m["mAP@all"], "P@10": float(hits.sum(1).mean() / 10),
            "top1": float(hits[:, 0].mean()), "queries": len(queries), "classes": len(scored),
            "gallery": len(gallery), "gallery_classes": len(gallery_classes), "per_class_mAP@all": per_class}


def scratch_photos(root: Path) -> list[Picture]:
    """The `SCRATCH_PHOTOS` costumes of the ``scratch`` package unpacked at ``root``."""
    folder = root / SCRATCH_COSTUMES
    return [Picture(label, Path(name).stem, Image.open(folder / name),
                    {"package": f"{SCRATCH_PACKAGE} {SCRATCH_VERSION}", "path": f"{SCRATCH_COSTUMES}/{name}",
                     "copyright": "Massachusetts Institute of Technology", "licence": "CC-BY-SA-3.0"})
            for name, label in SCRATCH_PHOTOS.items()]


def build(out: Path, cache: Path = CACHE, source: str = "gcompris") -> dict[str, Any]:
    """Fetch the photo package (``gcompris`` or ``scratch``) and the icon sets and write the
    benchmark into ``out``."""
    if source == "scratch":
        photos = scratch_photos(fetch_deb(SCRATCH_PACKAGE, SCRATCH_VERSION, cache))
        package = f"{SCRATCH_PACKAGE} {SCRATCH_VERSION} (Debian)"
    else:
        photos, package = gcompris_photos(fetch_package(cache)), f"{PACKAGE} {VERSION} (Debian)"
    about = {"photo_package": package, "sketch_packages": list(SKETCH_SETS.values()),
             "use": "evaluation only: never used for training or tuning"}
    return write_benchmark(out, photos, line_sketches(sorted({p.label for p in photos})), about)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="the benchmark folder (built when it has no manifest)")
    p.add_argument("--models", nargs="*", default=[], help="bundles to score: folders or names (dmwan-sketch)")
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch")
    p.add_argument("--source", choices=["gcompris", "scratch"], default="gcompris",
                   help="the photos: GCompris's named photos, or Scratch 1.4's cut-out photo costumes")
    p.add_argument("--rebuild", action="store_true", help="write the folder again")
    p.add_argument("--cache", type=Path, default=CACHE, help="where the .deb is kept")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    try:
        if args.rebuild or not (args.out / "manifest.json").exists():
            build(args.out, args.cache, args.source)
    except DatasetError as exc:
        sys.exit(f"error: {exc}")
    results = {}
    for ref in args.models:
        r = results[ref] = score(load_bundle(ref, "cpu", args.runtime), args.out)
        print(f"{ref} ({args.runtime}): mAP@all plain {r['mAP@all plain']:.4f}  mAP@all interpolated "
              f"{r['mAP@all']:.4f}  P@10 {r['P@10']:.4f}  top-1 {r['top1']:.3f}  ({r['queries']} sketch queries of "
              f"{r['classes']} classes; gallery {r['gallery']} photos of {r['gallery_classes']} classes)",
              file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
