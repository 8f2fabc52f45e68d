"""A small served collection for the server tests: a tiny seeded model, circle and square photos
in label folders, and a sketch of each, ingested by the real CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

from dmwan_qdrant.cli.app import main
from dmwan_qdrant.model import create_model, save_model

SHAPES = ("circle", "square")


def shape(kind: str, seed: int, sketch: bool) -> Image.Image:
    """A filled shape on noise (a photo), or its outline on white (a sketch)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (48, 48), "white") if sketch else Image.fromarray(
        rng.integers(140, 255, (48, 48, 3), dtype=np.uint8))
    x, r = int(rng.integers(18, 30)), int(rng.integers(9, 14))
    kw = {"outline": "black", "width": 2} if sketch else {"fill": (30, 30, 200)}
    (ImageDraw.Draw(img).ellipse if kind == "circle" else ImageDraw.Draw(img).rectangle)((x - r, x - r, x + r, x + r), **kw)
    return img


def make_collection(root: Path, name: str = "pics", photos_per_shape: int = 5) -> dict:
    """Store ``root/store`` with collection ``name``; returns its paths and sketch files."""
    bundle = save_model(create_model("tiny", seed=0), root / "bundle")
    for kind in SHAPES:
        (root / "photos" / kind).mkdir(parents=True, exist_ok=True)
        for i in range(photos_per_shape):
            shape(kind, i, sketch=False).save(root / "photos" / kind / f"{kind}{i}.png")
        shape(kind, 9, sketch=True).save(root / f"{kind}.png")
    store = root / "store"
    try:
        main(["ingest", str(root / "photos"), "-c", name, "-m", str(bundle), "--store", str(store),
              "--label-from-folder"])
    except SystemExit as e:
        assert e.code in (0, None)
    return {"root": root, "store": store, "bundle": bundle, "name": name,
            "sketches": [root / f"{kind}.png" for kind in SHAPES]}


class ServeProcess:
    """`dmwan serve ARGS --port 0` as a child process; `url` is where it listens."""

    def __init__(self, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 90.0) -> None:
        cmd = [sys.executable, "-m", "dmwan_qdrant.cli", "serve", *map(str, args), "--port", "0"]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.url = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"serving .* at (http://\S+?)/ ", line)
            if m:
                self.url = m.group(1)
                return
        self.proc.kill()
        raise AssertionError("dmwan serve did not start:\n" + "".join(self.lines) + self.proc.stderr.read())

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Send ``sig``; returns (exit code, the rest of stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rest = self.proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest = self.proc.communicate()[1]
        return self.proc.returncode, rest

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)
