"""`dmwan serve` over HTTP: warm latency against a cold `dmwan query`, throughput under concurrent
clients with and without micro-batching, and the server's memory.

Usage::

    python benchmarks/serve_latency.py                          # tiny and vit_b16, 10k points
    python benchmarks/serve_latency.py --points 500 --requests 30 --presets tiny --skip-cold
    python benchmarks/serve_latency.py --json serve.json        # also the raw figures

What it does, per preset (random weights, seeded; nothing is downloaded):

1. Builds ``--points``-point collections without embedding photos: a model bundle of
   ``create_model(preset, seed=0)``, then random unit vectors of the model's sizes (global and
   tokens) with the bundle's model record and ingest-like payloads pointing at a handful of real
   PNG files. Three collections per preset, cached under ``--workdir`` so reruns skip this.
2. `dmwan query` cold: a fresh process per search, wall time of ``--cold-runs`` runs (no server
   running: it would hold the store, and the CLI would search through it).
3. Starts the real server (``python -m dmwan_qdrant.cli serve --port 0``, default
   ``--max-batch 16``), warms it up, and times single searches from one client (a 256x256 PNG
   sketch as multipart ``sketch``, k = 10, default re-rank): p50 / p99 end to end.
   ``/metrics`` before and after says where the server's time went.
4. Throughput: 1, 4, 16 and 64 client threads on loopback, each with one keep-alive connection,
   sending back to back until ``--requests`` requests are answered in all; requests/s and
   p50 / p99. Then the same against ``--max-batch 1`` (no micro-batching).
5. Memory: VmRSS of the server process (``/proc/PID/status``) after warm-up, serving one and
   serving three collections.

The client threads run on the same cores as the server, as on a laptop; on 2 cores they take
part of the CPU the server could use. Figures are ratios measured in one run; absolute times
depend on what else the machine runs (the load average is printed with them).

Run time: a throughput run sends by default what one client sends in ``--run-seconds`` (at least
one request per client), so a run costs about the same for either preset. On 2 cores the whole
default run takes about 8-10 minutes, most of it vit_b16 (about 1 s a sketch on 2 cores); the
first run builds the collections too. The tables and the goal lines come out at the end as
Markdown for BENCHMARKS.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import itertools
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmwan_qdrant.model.shipped import SHIPPED_MODEL  # noqa: E402

DMWAN = [sys.executable, "-m", "dmwan_qdrant.cli"]  # the `dmwan` console script's entry point
SEARCH_ROUTE = "/collections/{name}/search"
COLLECTIONS_PER_PRESET = 3
GOAL_P50_MS = 20.0  # the goal, tiny model on 2 cores: p50 under 20 ms at one client
GOAL_CLIENTS, GOAL_SPEEDUP = 16, 2.0  # and at 16 clients at least 2x the one-client throughput


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- inputs --------------------------------------------------------------------------------------


def draw_sketch(seed: int = 42, side: int = 256):
    """Black strokes on white: an outline, a triangle and a scribble."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (side, side), "white")
    d = ImageDraw.Draw(img)
    d.ellipse((40, 50, 200, 210), outline="black", width=6)
    d.polygon([(128, 20), (30, 230), (226, 230)], outline="black", width=4)
    d.line([tuple(int(v) for v in rng.integers(20, side - 20, 2)) for _ in range(8)], fill="black", width=5)
    return img


def photo_files(folder: Path, n: int = 8) -> list[dict[str, Any]]:
    """``n`` small PNG photos (shapes on noise) in label folders, with the payload fields ingest
    stores for a file; made once, then reused by every point."""
    from PIL import Image, ImageDraw

    out = []
    for i in range(n):
        label = ("circle", "square")[i % 2]
        path = folder / label / f"{label}{i}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(i)
            img = Image.fromarray(rng.integers(120, 255, (96, 96, 3), dtype=np.uint8))
            shape = ImageDraw.Draw(img).ellipse if label == "circle" else ImageDraw.Draw(img).rectangle
            shape((20 + i, 20 + i, 70 + i, 70 + i), fill=(30, 30, 200))
            img.save(path)
        st = path.stat()
        out.append({"path": str(path.resolve()), "label": label, "width": 96, "height": 96,
                    "size": st.st_size, "mtime": st.st_mtime_ns / 1e9, "mtime_ns": st.st_mtime_ns})
    return out


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def fill_collection(store, name: str, record: dict[str, Any], points: int, photos: list[dict], seed: int) -> None:
    """``points`` random unit vectors under ``record``; ids and payloads as ingest makes them
    (the content hash is made up per point, so that every point has its own id)."""
    from dmwan_qdrant.ingest import point_id
    from dmwan_qdrant.store import CollectionSpec, PhotoPoint

    store.create_collection(name, CollectionSpec(record["dim"], record["token_dim"], record))
    rng = np.random.default_rng(seed)
    for start in range(0, points, 1000):
        n = min(1000, points - start)
        g, t = unit(rng, n, record["dim"]), unit(rng, n, record["num_tokens"], record["token_dim"])
        batch = []
        for j in range(n):
            content_hash = hashlib.sha256(f"{name}:{start + j}".encode()).hexdigest()
            payload = {**photos[(start + j) % len(photos)], "content_hash": content_hash}
            batch.append(PhotoPoint(point_id(content_hash), g[j], t[j], payload))
        store.upsert(name, batch)
    store.flush()


def prepare(workdir: Path, presets: list[str], points: int) -> dict[str, list[str]]:
    """The bundles and collections of every preset under ``workdir`` (built once, then reused)."""
    from dmwan_qdrant.encoder import load_bundle, model_record
    from dmwan_qdrant.model import create_model, save_model
    from dmwan_qdrant.store import open_store

    photos = photo_files(workdir / "photos")
    names: dict[str, list[str]] = {}
    with open_store(path=workdir / "store") as st:
        for preset in presets:
            bundle = workdir / "bundles" / preset
            if preset == SHIPPED_MODEL:  # the trained model inside the package (ONNX graphs)
                record = model_record(load_bundle(SHIPPED_MODEL, "cpu"))
            else:
                if not (bundle / "config.json").is_file():
                    save_model(create_model(preset, seed=0).eval(), bundle)  # random weights, no download
                record = model_record(load_bundle(bundle, "cpu"))
            names[preset] = [f"{preset}-{points}-{i}" for i in range(COLLECTIONS_PER_PRESET)]
            for i, name in enumerate(names[preset]):
                if st.collection_exists(name):
                    same = st.get_model_record(name).get("fingerprint") == record["fingerprint"]
                    if same and st.count(name) == points:
                        continue
                    st.delete_collection(name)
                t0 = time.perf_counter()
                fill_collection(st, name, record, points, photos, seed=i)
                log(f"built {name} in {time.perf_counter() - t0:.1f} s")
    return names


# -- the server and its clients ------------------------------------------------------------------


class Server:
    """`dmwan serve -c NAME... --port 0` as a child process, stopped with SIGTERM on exit."""

    def __init__(self, store: Path, names: list[str], max_batch: int | None = None, timeout: float = 600) -> None:
        cmd = [*DMWAN, "serve", *itertools.chain.from_iterable(("-c", n) for n in names),
               "--store", str(store), "--port", "0"]
        if max_batch is not None:
            cmd += ["--max-batch", str(max_batch)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        found: queue.Queue[str | None] = queue.Queue()
        # stderr is read to the end by a thread: a full pipe would block the server.
        threading.Thread(target=self._drain, args=(found,), daemon=True).start()
        try:
            url = found.get(timeout=timeout)
        except queue.Empty:
            url = None
        if url is None:
            self.stop()
            raise SystemExit("dmwan serve did not start:\n" + "".join(self.lines))
        self.startup_s = time.perf_counter() - t0
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port

    def _drain(self, found: queue.Queue) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"serving .* at (http://\S+?)/ ", line)
            if m:
                found.put(m.group(1))
        found.put(None)

    def rss_mib(self) -> dict[str, float]:
        """VmRSS of the server process and its parts, and VmHWM (peak), MiB. RssFile counts the
        store's memory-mapped files, which the kernel can drop and read again; RssAnon cannot."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024
                for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Client:
    """One keep-alive HTTP/1.1 connection (stdlib: the lightest client on the shared cores)."""

    def __init__(self, server: Server) -> None:
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=900)
        self.conn.connect()

    def call(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> bytes:
        self.conn.request(method, path, body, {"Content-Type": ctype} if ctype else {})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path} answered {resp.status}: {data[:300]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


class Search:
    """The request a client sends: one sketch as multipart ``sketch``, k = 10, default re-rank."""

    def __init__(self, name: str, png: bytes, k: int = 10) -> None:
        boundary = "dmwan-bench-" + hashlib.sha256(png).hexdigest()[:24]
        self.path = f"/collections/{name}/search?k={k}"
        self.ctype = f"multipart/form-data; boundary={boundary}"
        self.body = (f'--{boundary}\r\nContent-Disposition: form-data; name="sketch"; filename="sketch.png"\r\n'
                     f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
        self.k = k

    def send(self, client: Client) -> float:
        """Seconds for one search, the JSON answer parsed and checked."""
        t0 = time.perf_counter()
        answer = json.loads(client.call("POST", self.path, self.body, self.ctype))
        seconds = time.perf_counter() - t0
        if len(answer["queries"][0]["results"]) != self.k:
            raise RuntimeError(f"expected {self.k} results, got {answer['queries'][0]['results']!r:.300}")
        return seconds


def scrape(server: Server) -> dict[str, float]:
    """The server's Prometheus samples, ``name{labels}`` -> value."""
    c = Client(server)
    try:
        text = c.call("GET", "/metrics").decode()
    finally:
        c.close()
    samples = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_:][\w:]*(?:\{.*\})?)\s+(\S+)$", line)
        if m and not line.startswith("#"):
            samples[m.group(1)] = float(m.group(2))
    return samples


def breakdown(before: dict[str, float], after: dict[str, float], name: str) -> dict[str, float]:
    """Mean seconds per search request between two scrapes, as the server counts them: the whole
    request (middleware to answer), its batch's forward pass, its store search; and the mean
    batch it was embedded in (request-weighted)."""

    def delta(metric: str, label: str = "") -> float:
        return sum(v - before.get(k, 0.0) for k, v in after.items() if k.split("{")[0] == metric and label in k)

    def mean(metric: str, label: str = "") -> float:
        count = delta(metric + "_count", label)
        return delta(metric + "_sum", label) / count if count else float("nan")

    return {"http_s": mean("dmwan_http_request_seconds", f'route="{SEARCH_ROUTE}"'),
            "embed_s": mean("dmwan_embed_seconds", f'collection="{name}"'),
            "search_s": mean("dmwan_search_seconds", f'collection="{name}"'),
            "batch": mean("dmwan_batch_size")}


def warm_up(server: Server, search: Search, n: int) -> float:
    """``n`` searches from one client (first forward passes, caches); the median seconds."""
    c = Client(server)
    try:
        return statistics.median(search.send(c) for _ in range(n))
    finally:
        c.close()


def load(server: Server, search: Search, clients: int, requests: int) -> dict[str, Any]:
    """``clients`` threads sending back to back until ``requests`` searches are answered in all."""
    counter, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1, timeout=120)

    def run() -> None:
        c = None
        try:
            c = Client(server)  # connected before the clock starts
            start.wait()
            while True:
                with lock:
                    if next(counter) >= requests:
                        break
                latencies.append(search.send(c))
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)
            start.abort()
        finally:
            if c is not None:
                c.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{clients} clients: {errors[0]!r}")
    return {"clients": clients, "requests": len(latencies), "seconds": wall, "rps": len(latencies) / wall,
            **pct(latencies), "latencies_s": latencies}


def cold_queries(store: Path, name: str, sketch: Path, runs: int) -> list[float]:
    """Wall seconds of `dmwan query` in a fresh process, ``runs`` times."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run([*DMWAN, "query", str(sketch), "-c", name, "--store", str(store), "-k", "10"],
                           capture_output=True, text=True, check=False)
        out.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"dmwan query failed ({r.returncode}):\n{r.stderr}")
    return out


# -- figures -------------------------------------------------------------------------------------


def pct(seconds: list[float]) -> dict[str, float]:
    xs = sorted(seconds)
    p99 = xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]
    return {"p50_ms": 1000 * statistics.median(xs), "p99_ms": 1000 * p99}


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(r: dict[str, float]) -> str:
    return f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}"


def single_client(server: Server, search: Search, n: int, name: str) -> dict[str, Any]:
    """``n`` searches one after the other on one connection, and the server's view of them."""
    before = scrape(server)
    c = Client(server)
    lat = [search.send(c) for _ in range(n)]
    c.close()
    return {**pct(lat), "latencies_s": lat, **breakdown(before, scrape(server), name)}


def bench_preset(preset: str, names: list[str], args: argparse.Namespace, sketch: Path, png: bytes) -> dict[str, Any]:
    """Every figure of one preset: cold CLI, warm latency, throughput both ways, memory."""
    store = args.workdir / "store"
    fig: dict[str, Any] = {"preset": preset, "collection": names[0], "throughput": {}}
    search = Search(names[0], png)
    if not args.skip_cold:
        fig["cold_s"] = cold_queries(store, names[0], sketch, args.cold_runs)
        log(f"{preset}: dmwan query cold: " + ", ".join(f"{s:.2f}" for s in fig["cold_s"]) + " s")

    for max_batch in (16, 1):
        with Server(store, names[:1], max_batch=max_batch) as server:
            typical = warm_up(server, search, args.warmup)
            if max_batch == 16:  # the default server: latency from one client, and its memory
                fig["startup_s"] = server.startup_s
                n = args.latency_requests or int(np.clip(round(10.0 / typical), 20, 500))
                fig["latency"] = single_client(server, search, n, names[0])
                fig["rss_1"] = server.rss_mib()
                log(f"{preset}: warm p50 / p99 {ms(fig['latency'])} ms over {n} searches")
            # The same request counts with and without batching: what one client sends in --run-seconds.
            want = args.requests or int(min(2000, round(args.run_seconds * 1000 / fig["latency"]["p50_ms"])))
            rows = []
            for clients in args.clients:
                before = scrape(server)
                r = load(server, search, clients, max(want, clients))
                r.update(breakdown(before, scrape(server), names[0]))
                rows.append(r)
                log(f"{preset} max-batch {max_batch}: {clients:>3} clients {r['rps']:7.1f} req/s, "
                    f"p50 / p99 {ms(r)} ms, {r['requests']} requests in {r['seconds']:.1f} s")
            fig["throughput"][max_batch] = rows

    with Server(store, names) as server:
        for name in names:  # the first forward pass of each model allocates its buffers
            warm_up(server, Search(name, png), 2)
        fig["rss_3"] = server.rss_mib()
        log(f"{preset}: VmRSS {fig['rss_1']['VmRSS']:.0f} MiB serving 1 collection, "
            f"{fig['rss_3']['VmRSS']:.0f} MiB serving {len(names)}")
    return fig


def ingest_photos(folder: Path, n: int, seed: int) -> Path:
    """``n`` camera-sized JPEGs (640x480: noise, a shape, a gradient) under ``folder``, made once."""
    from PIL import Image, ImageDraw

    done = folder / ".complete"
    if done.is_file() and done.read_text() == str(n):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 90, 640, dtype=np.float32)[None, :, None]
    for i in range(n):
        base = rng.integers(60, 200, (480, 640, 3)).astype(np.float32) * 0.5 + ramp
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        x, y, r = (int(v) for v in rng.integers((80, 80, 30), (560, 400, 150)))
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        (ImageDraw.Draw(img).ellipse if i % 2 else ImageDraw.Draw(img).rectangle)((x - r, y - r, x + r, y + r), fill=fill)
        img.save(folder / f"photo{i:05d}.jpg", quality=88)
    done.write_text(str(n))
    return folder


def run_ingest(store: Path, name: str, folder: Path) -> dict[str, Any]:
    """`dmwan ingest FOLDER` into the served collection (it goes through the server); its report."""
    t0 = time.perf_counter()
    r = subprocess.run([*DMWAN, "ingest", str(folder), "-c", name, "--store", str(store), "--json"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"dmwan ingest failed ({r.returncode}):\n{r.stderr}")
    report = json.loads(r.stdout)
    report["wall_s"] = time.perf_counter() - t0
    return report


def during_ingest(preset: str, names: list[str], args: argparse.Namespace, png: bytes) -> dict[str, Any]:
    """Search latency idle and during an ingest of ``--during-ingest`` photos through the server,
    and the ingest's own images/s alone and beside the searches (one client searching back to
    back). Each ingest adds new photos; the collection is rebuilt on the next run."""
    n = args.during_ingest
    store, name = args.workdir / "store", names[0]
    alone_dir = ingest_photos(args.workdir / f"ingest-{n}-a", n, seed=1)
    beside_dir = ingest_photos(args.workdir / f"ingest-{n}-b", n, seed=2)
    search = Search(name, png)
    out: dict[str, Any] = {"preset": preset, "photos": n}
    with Server(store, [name]) as server:
        warm_up(server, search, args.warmup)
        c = Client(server)
        idle = [search.send(c) for _ in range(max(50, args.latency_requests or 0))]
        c.close()
        out["idle"] = {**pct(idle), "max_ms": 1000 * max(idle), "n": len(idle)}
        log(f"{preset}: idle search p50 / p99 {ms(out['idle'])} ms, max {out['idle']['max_ms']:.0f} ms")
        out["ingest_alone"] = run_ingest(store, name, alone_dir)
        log(f"{preset}: ingest of {n} photos alone: {out['ingest_alone']['images_per_second']:.1f} images/s")
        stop, lat = threading.Event(), []

        def searching() -> None:
            cl = Client(server)
            while not stop.is_set():
                lat.append(search.send(cl))
            cl.close()

        t = threading.Thread(target=searching, daemon=True)
        t.start()
        out["ingest_beside"] = run_ingest(store, name, beside_dir)
        stop.set()
        t.join()
        out["during"] = {**pct(lat), "max_ms": 1000 * max(lat), "n": len(lat)}
        log(f"{preset}: during the ingest: search p50 / p99 {ms(out['during'])} ms, max {out['during']['max_ms']:.0f} "
            f"ms over {len(lat)} searches; ingest {out['ingest_beside']['images_per_second']:.1f} images/s")
    with open_store_for(store) as st:  # the next run starts from the random collection again
        st.delete_collection(name)
    return out


def open_store_for(store: Path):
    from dmwan_qdrant.store import open_store

    return open_store(path=store)


def during_report(figs: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    rows = [[f["preset"], f["photos"], f"{ms(f['idle'])} / {f['idle']['max_ms']:.0f}",
             f"{ms(f['during'])} / {f['during']['max_ms']:.0f}", f["during"]["n"],
             f"{f['ingest_alone']['images_per_second']:.1f}", f"{f['ingest_beside']['images_per_second']:.1f}"]
            for f in figs]
    return (f"Searches (one client, back to back, k = 10) while `dmwan ingest` of camera-sized JPEGs (640x480) "
            f"goes through the server; {machine['usable_cores']} cores, load {machine['load_before']:.1f} before, "
            f"{machine['load_after']:.1f} after.\n\n"
            + table(["model", "photos", "search p50 / p99 / max ms, idle", "during the ingest", "searches during",
                     "ingest images/s alone", "ingest images/s beside searches"], rows))


def report(figs: list[dict[str, Any]], args: argparse.Namespace, machine: dict[str, Any]) -> str:
    """The tables and the goal lines, as Markdown."""
    out = [(f"{args.points} points per collection (random unit vectors), embedded store, k = 10, re-rank "
            f"over 100 candidates, one 256x256 PNG sketch per request as multipart; {machine['cores']} cores "
            f"(nproc), torch threads {machine['torch_threads']}, load average {machine['load_before']:.2f} "
            f"before, {machine['load_after']:.2f} after, {machine['date']}. Ratios measured in one run."), ""]
    rows = []
    for f in figs:
        lat = f["latency"]
        cold = statistics.median(f["cold_s"]) if "cold_s" in f else None
        rows.append([f["preset"], ms(lat), len(lat["latencies_s"]),
                     "-" if cold is None else f"{cold:.2f} (median of {len(f['cold_s'])})",
                     "-" if cold is None else f"{cold * 1000 / lat['p50_ms']:.0f}x", f"{f['startup_s']:.1f}"])
    out += ["Latency of one search from one client, warm server (default `--max-batch 16`):", "",
            table(["preset", "HTTP p50 / p99 ms", "searches", "`dmwan query` cold s", "cold / warm p50",
                   "server start s"], rows), ""]

    rows = []
    for f in figs:
        runs = {m: {r["clients"]: r for r in f["throughput"][m]} for m in (16, 1)}
        for clients in args.clients:
            b, u = runs[16][clients], runs[1][clients]
            rows.append([f["preset"], clients, f"{b['rps']:.1f}", ms(b), f"{u['rps']:.1f}", ms(u),
                         f"{b['rps'] / u['rps']:.2f}x", b["requests"]])
    out += ["Throughput on loopback (the client threads share the cores), requests/s and p50 / p99 ms:", "",
            table(["preset", "clients", "max-batch 16 req/s", "p50 / p99", "max-batch 1 req/s", "p50 / p99",
                   "batching gain", "requests"], rows), ""]

    rows = []
    for f in figs:
        for label, r in [("1, latency run", f["latency"])] + [
                (f"{r['clients']}, max-batch {m}", r) for m in (16, 1) for r in f["throughput"][m]]:
            rows.append([f["preset"], label, f"{r['p50_ms']:.1f}", f"{1000 * r['http_s']:.1f}",
                         f"{1000 * r['embed_s']:.1f}", f"{1000 * r['search_s']:.1f}", f"{r['batch']:.1f}"])
    out += [("Where the time goes (`/metrics`, means per search request; embed is the forward pass of the "
             "request's whole batch, preprocessing included):"), "",
            table(["preset", "clients", "client p50 ms", "server ms", "embed ms", "store search ms", "batch"], rows),
            ""]

    rows = [[f["preset"], f"{f['rss_1']['VmRSS']:.0f} ({f['rss_1']['RssAnon']:.0f} / {f['rss_1']['RssFile']:.0f})",
             f"{f['rss_3']['VmRSS']:.0f} ({f['rss_3']['RssAnon']:.0f} / {f['rss_3']['RssFile']:.0f})",
             f"{(f['rss_3']['VmRSS'] - f['rss_1']['VmRSS']) / (COLLECTIONS_PER_PRESET - 1):.0f}"] for f in figs]
    out += [("Server memory after warm-up, VmRSS MiB (anonymous / file-backed, the latter mostly the store's "
             "memory-mapped vectors):"), "",
            table(["preset", "1 collection", f"{COLLECTIONS_PER_PRESET} collections", "each extra"], rows), ""]

    tiny = next((f for f in figs if f["preset"] == "tiny"), None)
    out.append(f"Goals (tiny model, {machine['cores']} cores):")
    if tiny is None:
        out.append("- not measured (run with the tiny preset)")
    else:
        p50 = tiny["latency"]["p50_ms"]
        out.append(f"- p50 under {GOAL_P50_MS:.0f} ms end to end at one client: {p50:.1f} ms, "
                   + ("PASS" if p50 < GOAL_P50_MS else "MISS"))
        by = {r["clients"]: r["rps"] for r in tiny["throughput"][16]}
        if 1 in by and GOAL_CLIENTS in by:
            ratio = by[GOAL_CLIENTS] / by[1]
            out.append(f"- at {GOAL_CLIENTS} clients at least {GOAL_SPEEDUP:.0f}x the one-client throughput: "
                       f"{by[GOAL_CLIENTS]:.1f} / {by[1]:.1f} req/s = {ratio:.2f}x, "
                       + ("PASS" if ratio >= GOAL_SPEEDUP else "MISS"))
        else:
            out.append(f"- {GOAL_CLIENTS} clients against 1: not measured "
                       f"(--clients must include 1 and {GOAL_CLIENTS})")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000, help="points per collection")
    ap.add_argument("--presets", default="tiny,vit_b16")
    ap.add_argument("--clients", default="1,4,16,64", help="concurrent clients, comma-separated")
    ap.add_argument("--requests", type=int, default=None,
                    help="requests per throughput run (all clients together; default: what one client "
                         "sends in --run-seconds, at most 2000), at least one per client")
    ap.add_argument("--run-seconds", type=float, default=8.0, help="sizes the default --requests")
    ap.add_argument("--latency-requests", type=int, default=None,
                    help="single-client searches timed (default: about 10 s worth, 20 to 500)")
    ap.add_argument("--warmup", type=int, default=5, help="searches before measuring")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold `dmwan query` runs")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dmwan-serve-bench")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    ap.add_argument("--during-ingest", type=int, default=None, metavar="N",
                    help="only: search latency idle and during an ingest of N photos through the server")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]

    import torch

    t_start = time.perf_counter()
    machine = {"cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
               "torch_threads": torch.get_num_threads(), "load_before": os.getloadavg()[0],
               "date": datetime.date.today().isoformat()}
    args.workdir.mkdir(parents=True, exist_ok=True)
    names = prepare(args.workdir, presets, args.points)
    sketch = args.workdir / "sketch.png"
    draw_sketch().save(sketch)
    png = sketch.read_bytes()

    if args.during_ingest:
        figs = [during_ingest(p, names[p], args, png) for p in presets]
        machine["load_after"] = os.getloadavg()[0]
        print(f"\n## Serving during an ingest (`python benchmarks/serve_latency.py --during-ingest "
              f"{args.during_ingest} --presets {args.presets}`)\n")
        print(during_report(figs, machine))
        if args.json is not None:
            args.json.write_text(json.dumps({"machine": machine, "during_ingest": figs}, indent=1, default=str))
        return
    figs = [bench_preset(p, names[p], args, sketch, png) for p in presets]
    machine["load_after"] = os.getloadavg()[0]
    machine["wall_s"] = time.perf_counter() - t_start

    print("\n## Serving (`python benchmarks/serve_latency.py`)\n")
    print(report(figs, args, machine))
    log(f"(whole run {machine['wall_s']:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
                                         "presets": figs}, indent=1))


if __name__ == "__main__":
    main()
