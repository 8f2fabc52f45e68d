"""The README's workflow for a new user's own material, run as a new user would run it.

Every `dmwan` line of the README sections below runs through a real shell, with the installed
`dmwan` command, from a folder outside the checkout, with ``HOME`` there too (so ``~/Pictures``
and the default store are the new user's). Only what needs the internet is replaced, by the
substitutions in `OFFLINE`, which say what stands in for it; lines that cannot run here
(`dmwan serve` runs until stopped; real benchmarks) are listed in `NOT_RUN` with the test that
covers them instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SECTIONS = ("Start from a model", "Your own photos", "Search without PyTorch: ONNX",
            "Fine-tune on your own sketches and photos")

#: What needs the internet, and what stands in for it here.
OFFLINE = {
    # CLIP ViT-B/16's weights download from the hub: the tiny preset and an open_clip-format file.
    "--preset vit_b16 --pretrained openai": "--preset tiny --pretrained {tiny_clip}",
    # The fine-tuned run is named after the bundle's preset.
    "vit_b16-finetuned": "tiny-finetuned",
    # A shorter fine-tuning run (the same command; test_train_own_data runs more).
    "--epochs 5": "--epochs 1",
    # One epoch of the default recipe (test_recipe covers what it chooses).
    "dmwan train --data my-data --unseen 3": "dmwan train --data my-data --unseen 3 --epochs 1",
}
#: Lines not run here, and what covers them.
NOT_RUN = {
    "dmwan serve": "runs until stopped: tests/test_serve_cli.py drives it",
}


def readme_commands() -> list[str]:
    """The `dmwan` lines of the bash blocks of `SECTIONS`, in order."""
    text = README.read_text()
    lines: list[str] = []
    for section in SECTIONS:
        match = re.search(rf"^### {re.escape(section)}\n(.*?)(?=^### |^## |\Z)", text, re.S | re.M)
        assert match, f"README has no section {section!r}"
        for block in re.findall(r"```bash\n(.*?)```", match.group(1), re.S):
            for line in block.splitlines():
                command = line.split("  #")[0].strip()  # a comment after two spaces is a note
                if command.startswith("dmwan "):
                    lines.append(command)
    return lines


def _new_user_world(home: Path) -> None:
    """What the README's reader has: JPEG photos by kind in ~/Pictures/catalogue, a few sketches
    (and ~/Sketches), a holiday photo, and a folder of their own sketches and photos by class."""
    from PIL import Image

    from dmwan_qdrant.data import ProceduralConfig, generate_benchmark

    data = generate_benchmark(home / "bench", ProceduralConfig(
        n_classes=6, unseen_classes=3, photos_per_class=6, sketches_per_class=6, image_size=48, seed=3))
    kinds = ("boot", "shoe", "sandal", "slipper", "sneaker", "clog")
    for kind, folder in zip(kinds, sorted(p for p in (data / "photo").iterdir() if p.is_dir())):
        for i, photo in enumerate(sorted(folder.glob("*.png")), start=1):
            out = home / "Pictures" / "catalogue" / kind / f"{i}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.open(photo).convert("RGB").save(out, quality=92)
    mine = home / "my-data"
    shutil.copytree(data / "photo", mine / "photo")
    shutil.copytree(data / "sketch", mine / "sketch")
    sketches = sorted((data / "sketch").rglob("*.png"))
    for name, source in zip(("my_sketch.png", "a.png", "b.png", "Sketches/c.png", "Sketches/d.png"), sketches[::5]):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, home / name)
    Image.open(sorted((data / "photo").rglob("*.png"))[-1]).convert("RGB").save(home / "holiday.jpg")
    shutil.rmtree(home / "bench")


@pytest.mark.slow
def test_readme_workflow_runs_as_written(tmp_path, tiny_clip_file):
    home = tmp_path / "user"
    home.mkdir()
    _new_user_world(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMWAN_", "QDRANT_", "XDG_"))}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    commands = readme_commands()
    assert any(c.startswith("dmwan model create") for c in commands)
    ran = 0
    for command in commands:
        if any(command.startswith(prefix) for prefix in NOT_RUN):
            continue
        if "| jq" in command and shutil.which("jq") is None:
            continue  # jq is the reader's tool, not ours
        for written, here in OFFLINE.items():
            command = command.replace(written, here.format(tiny_clip=tiny_clip_file))
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=home, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, command
        ran += 1
    assert ran >= len(commands) - 2
    assert (home / "results.png").stat().st_size > 0  # the contact sheet of `--sheet results.png`
    assert (home / "runs" / "my-data-tiny-finetuned" / "model" / "config.json").is_file()
    assert not (Path.cwd() / "clip-vit-b16").exists()  # nothing was written into the checkout
