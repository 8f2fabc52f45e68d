"""`dmwan demo` end to end (Ray Train, ingest, queries through Qdrant), and run again."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def _demo(workdir, *args) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dmwan_qdrant.cli", "demo", "--workdir", str(workdir), *args],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_demo_end_to_end_and_rerun(tmp_path):
    out = _demo(tmp_path, "--epochs", "1")
    assert "epoch   1" in out
    qdrant = re.search(r"through Qdrant : mAP@all ([0-9.]+)", out)
    offline = re.search(r"offline eval   : mAP@all ([0-9.]+)", out)
    assert qdrant and offline and abs(float(qdrant[1]) - float(offline[1])) < 1e-3, out
    assert "they agree" in out
    assert "selected epoch 1 of 1 (by validation mAP@all" in out  # chosen on validation classes
    assert re.search(r"validation classes\s*: P@10 [0-9.]+ -> [0-9.]+", out) and "(plain AP " in out
    assert (tmp_path / "contact_sheet.png").stat().st_size > 0
    assert "480 added" in out
    # What to do next: the demo's store holds one collection, so no --collection is needed.
    store = re.escape(str(tmp_path / "store"))
    assert re.search(rf"dmwan serve --store {store} ", out)
    assert re.search(rf"dmwan query \S+\.png --store {store}\n", out)
    assert "dmwan train --config procedural_tiny " in out  # a shipped name: runs outside the checkout too

    again = _demo(tmp_path, "--epochs", "1")  # the finished run is resumed, the photos are unchanged
    assert "0 added, 480 unchanged" in again, again
    assert re.search(r"through Qdrant : mAP@all ([0-9.]+)", again)[1] == qdrant[1]
