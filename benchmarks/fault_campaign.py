"""Fault campaign against the embedded store and the `dmwan` CLI, as an operator would try it.

Each fault is tried several times on a generated photo folder and the tiny model; after each one
the outcome is judged the way a user would: the exit code and the one line the command printed
(no traceback, no signal death), and whether running the same command again (or `dmwan
collections check --repair`) ends with exactly one point per distinct photo and a collection that
`check` calls intact. Prints a Markdown table; ``--write docs/reliability.md`` replaces the table
between the campaign markers there.

    python benchmarks/fault_campaign.py --kills 20 --write docs/reliability.md

Needs root for the small and read-only file systems (tmpfs mounts); skips those faults otherwise.
Sends no traffic anywhere: it only runs the CLI on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]
ENV = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
MARK_BEGIN, MARK_END = "<!-- campaign:begin -->", "<!-- campaign:end -->"


@dataclass
class Fault:
    name: str
    outcomes: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] += 1


def run(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*DMWAN, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


def make_photos(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        f = root / f"class{i % 4}" / f"{i:04d}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40 + i % 9, 48, 3), dtype=np.uint8)).save(f)


def clean_line(stderr: str) -> bool:
    """One ``error:`` line and no traceback."""
    return "Traceback" not in stderr and sum(line.startswith("error:") for line in stderr.splitlines()) == 1


def intact(store: Path, n: int) -> bool:
    r = run("collections", "check", "pics", "--store", store, "--json")
    if r.returncode != 0:
        return False
    report = json.loads(r.stdout)
    return report["ok"] and report["points"] == n


def ingest_args(photos: Path, store: Path, bundle: Path | None) -> list[object]:
    args: list[object] = ["ingest", photos, "-c", "pics", "--store", store, "--batch-size", "8", "--label-from-folder"]
    return [*args, "--model", bundle] if bundle else args


def finish(photos: Path, store: Path, bundle: Path, n: int) -> bool:
    """Run the same ingest again and judge the collection."""
    r = run(*ingest_args(photos, store, bundle))
    return r.returncode == 0 and intact(store, n)


def _start(photos: Path, store: Path, bundle: Path) -> subprocess.Popen:
    """Start an ingest into a fresh ``store``; returns once its collection exists."""
    proc = subprocess.Popen([*DMWAN, *map(str, ingest_args(photos, store, bundle))], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    while not (store / "pics" / "collection.json").exists() and proc.poll() is None:
        time.sleep(0.01)
    return proc


def _write_window(photos: Path, store: Path, bundle: Path) -> float:
    proc = _start(photos, store, bundle)
    t0 = time.perf_counter()
    proc.communicate(timeout=300)
    assert proc.returncode == 0, "a clean ingest must work"
    return time.perf_counter() - t0


def signal_mid_run(photos: Path, work: Path, bundle: Path, n: int, sig: int, delay: float) -> tuple[str, float]:
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    proc = _start(photos, store, bundle)
    time.sleep(delay)
    sent = time.perf_counter()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    took = time.perf_counter() - sent
    if proc.returncode == 0:
        outcome = "finished before the signal"
    elif proc.returncode < 0 and " added, " in out:
        outcome = "signal after the summary, in exit clean-up: default action"
    elif sig == signal.SIGKILL:
        outcome = "killed"
    elif proc.returncode == 128 + sig and clean_line(err):
        outcome = f"exit {proc.returncode}, one line"
    else:
        outcome = f"exit {proc.returncode}, {'traceback' if 'Traceback' in err else 'unclear output'}"
    resumed = finish(photos, store, bundle, n)
    return f"{outcome}; re-run {'complete, no duplicates' if resumed else 'FAILED'}", took


def tmpfs(path: Path, size_mb: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def campaign(args: argparse.Namespace) -> list[Fault]:
    sys.path.insert(0, str(REPO))
    from dmwan_qdrant.model import create_model, save_model

    work = Path(tempfile.mkdtemp(prefix="dmwan-faults-"))
    photos = work / "photos"
    make_photos(photos, args.photos)
    n = args.photos
    bundle = save_model(create_model("tiny", seed=0), work / "bundle")
    # The window in which points are written: from the moment the collection appears (it is
    # created right before the first batch) to the end of the run, measured on a warm run.
    for _ in range(2):
        shutil.rmtree(work / "calib", ignore_errors=True)
        window = _write_window(photos, work / "calib", bundle)
    assert intact(work / "calib", n), "a clean ingest must work"

    def mid_run() -> float:
        return rng.uniform(0.05, 0.9) * window

    rng = random.Random(0)
    faults: list[Fault] = []

    for sig, label, trials in ((signal.SIGKILL, "SIGKILL during ingest", args.kills),
                               (signal.SIGINT, "Ctrl-C (SIGINT) during ingest", args.signals),
                               (signal.SIGTERM, "SIGTERM during ingest", args.signals)):
        f = Fault(label)
        times = []
        for _ in range(trials):
            outcome, took = signal_mid_run(photos, work, bundle, n, sig, mid_run())
            f.add(outcome)
            times.append(took)
        if sig != signal.SIGKILL:
            f.notes.append(f"exit within {max(times):.2f} s of the signal (max of {trials})")
        faults.append(f)

    f = Fault("manifest (collection.json) deleted, then ingest")
    for _ in range(args.damage):
        store = work / "m"
        shutil.rmtree(store, ignore_errors=True)
        finish(photos, store, bundle, n)
        (store / "pics" / "collection.json").unlink()
        r = run(*ingest_args(photos, store, bundle))
        refused = r.returncode == 12 and clean_line(r.stderr)
        rec = run("collections", "recover", "pics", "--store", store).returncode == 0
        f.add(f"{'refused, points kept' if refused else 'NOT refused'}; recover {'complete' if rec and intact(store, n) else 'FAILED'}")
    faults.append(f)

    damage = {
        "global vectors garbled (1e38)": lambda seg: _garble(next(seg.glob("vector_storage-global/vectors/chunk_*"))),
        "global vector file truncated": lambda seg: os.truncate(next(seg.glob("vector_storage-global/vectors/chunk_*")), 1000),
        "segments and WAL deleted": None,
    }
    for label, hurt in damage.items():
        f = Fault(label)
        for _ in range(args.damage):
            store = work / "d"
            shutil.rmtree(store, ignore_errors=True)
            finish(photos, store, bundle, n)
            shard = store / "pics" / "shard"
            if hurt is None:
                shutil.rmtree(shard / "segments")
                (shard / "segments").mkdir()
                shutil.rmtree(shard / "wal")
            else:
                for seg in (shard / "segments").iterdir():
                    hurt(seg)
            seen = run("collections", "check", "pics", "--store", store).returncode == 12
            r = run("collections", "check", "pics", "--store", store, "--repair")
            f.add(f"check {'reports it' if seen else 'MISSES it'}; repair {'intact' if r.returncode == 0 and intact(store, n) else 'FAILED'}")
        faults.append(f)

    if tmpfs(work / "small", 8):
        f = Fault("ingest onto an 8 MB disk")
        for _ in range(args.damage):
            shutil.rmtree(work / "small" / "store", ignore_errors=True)
            r = run(*ingest_args(photos, work / "small" / "store", bundle))
            f.add(f"exit {r.returncode}, {'one line' if clean_line(r.stderr) else 'unclear'}")
        umount(work / "small")
        faults.append(f)
        f = Fault("disk filled by another process during ingest")
        for _ in range(args.damage):
            mnt = work / "fill"
            if not tmpfs(mnt, 200):
                break
            proc = _start(photos, mnt / "store", bundle)
            time.sleep(mid_run())
            st = os.statvfs(mnt)
            with open(mnt / "filler", "wb") as fh:
                try:
                    fh.write(b"\0" * (st.f_bavail * st.f_frsize - (20 << 20)))
                except OSError:
                    pass
            _, err = proc.communicate(timeout=120)
            outcome = "finished first" if proc.returncode == 0 else f"exit {proc.returncode}, {'one line' if clean_line(err) else 'unclear'}"
            (mnt / "filler").unlink()
            f.add(f"{outcome}; re-run {'complete' if finish(photos, mnt / 'store', bundle, n) else 'FAILED'}")
            umount(mnt)
        faults.append(f)
        f = Fault("store on a read-only medium: query, list, info, check")
        mnt = work / "ro"
        if tmpfs(mnt, 300):
            finish(photos, mnt / "store", bundle, n)
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            sketch = next(photos.glob("*/*.jpg"))
            codes = [run("query", sketch, "-c", "pics", "--store", mnt / "store").returncode,
                     run("collections", "list", "--store", mnt / "store").returncode,
                     run("collections", "info", "pics", "--store", mnt / "store").returncode,
                     run("collections", "check", "pics", "--store", mnt / "store").returncode]
            f.add("all answered" if codes == [0, 0, 0, 0] else f"exit codes {codes}")
            umount(mnt)
        faults.append(f)
    shutil.rmtree(work, ignore_errors=True)
    return faults


def _garble(file: Path) -> None:
    with open(file, "r+b") as fh:
        fh.write(np.full(1024, 1e38, dtype=np.float32).tobytes())


def table(faults: list[Fault], photos: int) -> str:
    lines = [f"Campaign of {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, {photos} photos, the tiny model, "
             "batches of 8 (`python benchmarks/fault_campaign.py`):", "",
             "| fault | tries | outcome | notes |", "|---|---|---|---|"]
    for f in faults:
        outcome = "; ".join(f"{k} ×{v}" for k, v in f.outcomes.most_common())
        lines.append(f"| {f.name} | {sum(f.outcomes.values())} | {outcome} | {'; '.join(f.notes)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=1500)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--signals", type=int, default=5)
    ap.add_argument("--damage", type=int, default=2)
    ap.add_argument("--write", type=Path, help="replace the campaign table in this Markdown file")
    args = ap.parse_args(argv)
    text = table(campaign(args), args.photos)
    print(text)
    if args.write:
        doc = args.write.read_text()
        a, b = doc.index(MARK_BEGIN) + len(MARK_BEGIN), doc.index(MARK_END)
        args.write.write_text(doc[:a] + "\n" + text + "\n" + doc[b:])


if __name__ == "__main__":
    main()
