"""`dmwan ingest` end to end: summary and JSON, exit codes, bad files, a killed run, refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dmwan_qdrant.cli.collections  # noqa: F401 - registers the commands on `app`
import dmwan_qdrant.cli.ingest  # noqa: F401
import dmwan_qdrant.cli.query  # noqa: F401
from cli_helpers import dmwan, one_line_error
from dmwan_qdrant.model import create_model, save_model
from dmwan_qdrant.store import open_store

# `python -m dmwan_qdrant.cli` runs the console script's entry point, `main()`, with every command
# registered the way `dmwan` registers them.
DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]


def make_photos(root: Path, n: int = 10, seed: int = 0) -> list[Path]:
    """``n`` small random JPEGs in two class folders."""
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        f = root / ("a" if i % 2 else "b") / f"{i:03d}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24 + i % 5, 32, 3), dtype=np.uint8)).save(f)
        files.append(f)
    return files


def make_bad(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "zero.png").write_bytes(b"")
    (root / "text.jpg").write_text("hello")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return save_model(create_model("tiny", seed=0), tmp_path_factory.mktemp("m") / "tiny")


def test_ingest_summary_then_rerun_json(tmp_path, capsys, bundle):
    files = make_photos(tmp_path / "photos")
    store = tmp_path / "store"
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--model", bundle, "--store", store,
                         "--label-from-folder", "--batch-size", "4", "--workers", "1")
    assert code == 0 and f"{len(files)} added" in out and "0 failed" in out
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "--json")
    report = json.loads(out)
    assert code == 0 and (report["added"], report["unchanged"], report["failed"]) == (0, len(files), [])
    # Duplicate, rename and prune through the CLI.
    shutil.copy(files[0], tmp_path / "photos" / "dup.jpg")
    files[1].rename(tmp_path / "photos" / "moved.jpg")
    files[2].unlink()
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "--prune", "--json")
    report = json.loads(out)
    assert (report["added"], report["duplicates"], report["updated"], report["pruned"]) == (0, 1, 1, 1)
    with open_store(path=store) as st:
        assert st.count("pics") == len(files) - 1


def test_new_collection_needs_a_model_and_another_model_is_refused(tmp_path, capsys, bundle, monkeypatch):
    from dmwan_qdrant.model import shipped

    make_photos(tmp_path / "photos", n=2)
    store = tmp_path / "store"
    # Without the shipped model (dmwan-sketch, the default; tests/test_cli_defaults.py) it asks for one.
    with monkeypatch.context() as m:
        m.setattr(shipped, "shipped_folder", lambda name=shipped.SHIPPED_MODEL: tmp_path / "gone" / name)
        code, _, err = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store)
    assert code == 2 and "--model" in one_line_error(err)
    assert dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "-m", bundle)[0] == 0
    other = save_model(create_model("tiny", seed=1), tmp_path / "other")
    code, _, err = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "-m", other)
    assert code == 9 and "filled by model" in one_line_error(err)
    code, _, err = dmwan(capsys, "ingest", tmp_path / "nothing", "-c", "pics", "--store", store)
    assert code == 2 and "no such file" in one_line_error(err)
    with open_store(path=store):  # held by this process: the command must say so, not hang
        code, _, err = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store)
    assert code == 7 and "already open" in one_line_error(err)


def test_killed_mid_ingest_then_rerun_stores_each_good_file_once(tmp_path, capsys, bundle):
    """A real SIGKILL mid-run, then the real command: each good file once, bad ones reported."""
    files = make_photos(tmp_path / "photos", n=24)
    make_bad(tmp_path / "photos" / "bad")
    shutil.copy(files[5], tmp_path / "photos" / "b" / "zzz_dup.jpg")
    store = tmp_path / "store"
    # SIGKILL itself right after the second batch was upserted: no flush, no close, no cleanup.
    script = textwrap.dedent(f"""
        import os, signal
        from dmwan_qdrant.encoder import load_bundle
        from dmwan_qdrant.ingest import ingest
        from dmwan_qdrant.store import open_store
        def die(p):
            if p.decoded >= 16:
                os.kill(os.getpid(), signal.SIGKILL)
        st = open_store(path={str(store)!r})
        ingest([{str(tmp_path / "photos")!r}], st, "pics", load_bundle({str(bundle)!r}),
               batch_size=8, num_workers=1, progress=die)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with open_store(path=store) as st:
        assert 0 < st.count("pics") < len(files)
    # The re-run through the real command line: exit code 11 (bad files) after storing the rest.
    proc = subprocess.run([*DMWAN, "ingest", str(tmp_path / "photos"), "--collection", "pics", "--store", str(store)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 11 and "Traceback" not in proc.stderr, proc.stderr
    assert "2 failed" in proc.stdout and "1 duplicates" in proc.stdout
    assert "zero.png: empty file" in proc.stdout and "text.jpg: not an image" in proc.stdout
    with open_store(path=store) as st:
        paths = sorted(p["path"] for _, p in st.scroll_payloads("pics", ["path"]))
    assert paths == sorted(map(str, files))
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "--json")
    assert json.loads(out)["unchanged"] == len(files)


def test_interrupt_is_one_line(tmp_path, capsys, bundle, monkeypatch):
    make_photos(tmp_path / "photos", n=2)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("dmwan_qdrant.ingest.ingest", interrupted)
    code, _, err = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "x", "-m", bundle, "--store", tmp_path / "s")
    assert code == 130 and "Traceback" not in err
    if os.path.exists(tmp_path / "s"):  # the store was closed on the way out: it opens again
        open_store(path=tmp_path / "s").close()


def test_ingest_keeps_up_with_labels_gone_files_and_empty_folders(tmp_path, capsys, bundle):
    files = make_photos(tmp_path / "photos", n=6)
    store = tmp_path / "store"
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--model", bundle, "--store", store)
    assert code == 0 and "6 added" in out
    # Labelling added afterwards: applied in place, without embedding anything again.
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store,
                         "--label-from-folder", "--json")
    report = json.loads(out)
    assert (report["updated"], report["unchanged"], report["decoded"]) == (6, 0, 0)
    with open_store(path=store) as st:
        assert sorted(p.get("label") for _, p in st.scroll_payloads("pics")) == ["a"] * 3 + ["b"] * 3
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store, "--label-from-folder")
    assert "0 updated, 6 unchanged" in out
    # Files gone without --prune: the summary counts them and names the fix.
    files[0].unlink()
    files[1].unlink()
    code, out, _ = dmwan(capsys, "ingest", tmp_path / "photos", "-c", "pics", "--store", store)
    assert code == 0 and "2 points under these paths point at files that are gone" in out and "--prune" in out
    # A folder without images is an error naming the suffixes read, and stores nothing.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    code, _, err = dmwan(capsys, "ingest", tmp_path / "empty", "-c", "pics", "--store", store)
    line = one_line_error(err)
    assert code == 2 and ".jpg" in line and ".png" in line and "nothing was stored" in line
    with open_store(path=store) as st:
        assert st.count("pics") == 6
