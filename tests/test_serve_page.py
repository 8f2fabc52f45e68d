"""The sketch-pad page of `dmwan serve`, driven in a real browser (Debian's Chromium, Playwright).

A user draws, uploads or types on the page and expects the grid to show what the API (and
`dmwan query`) answers for the same query. The server runs as a subprocess on a small collection
ingested by the CLI with a seeded tiny model.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dmwan_qdrant.cli.app import main
from dmwan_qdrant.model import create_model

from serve_helpers import make_collection

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# Root, no display, closed network (see the browser notes): without the background-networking
# flags Chromium keeps trying to reach Google hosts.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
K = 6
WAIT_MS = 30_000


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Collection 'pics' (8 photos, labels circle/square) ingested by the CLI, a sketch to upload,
    and what `dmwan query SKETCH -k K --json` answers before any server holds the store."""
    made = make_collection(tmp_path_factory.mktemp("page"), photos_per_shape=4)
    root, store, sketch = made["root"], made["store"], made["sketches"][0]
    code, out = _run_cli(["query", str(sketch), "-c", "pics", "--store", str(store), "-k", str(K), "--json"])
    assert code == 0, out
    query_ids = [r["id"] for r in json.loads(out)["queries"][0]["results"]]
    assert len(query_ids) == K
    # An embedded store is locked to one process: the API-key server gets its own copy.
    shutil.copytree(store, root / "store-keyed", ignore=shutil.ignore_patterns(".lock", ".server.json"))
    return {"root": root, "store": store, "sketch": sketch, "query_ids": query_ids}


def _run_cli(argv: list[str]) -> tuple[int, str]:
    """`dmwan ARGV` in this process; (exit code, stdout)."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue()


@contextlib.contextmanager
def _serve(store: Path, log: Path, *extra: str):
    """`dmwan serve` on a free port until the block ends; yields its base URL once /readyz says 200."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "dmwan_qdrant.cli", "serve", "--collection", "pics", "--store", str(store),
           "--port", str(port), *extra]
    child_env = {k: v for k, v in os.environ.items() if k != "DMWAN_API_KEY"}
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=child_env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`dmwan serve` exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"`dmwan serve` not ready after 60 s:\n{log.read_text(errors='replace')}")
            time.sleep(0.25)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(env):
    with _serve(env["store"], env["root"] / "serve.log") as base:
        yield base


@pytest.fixture(scope="module")
def keyed_server(env):
    with _serve(env["root"] / "store-keyed", env["root"] / "serve-keyed.log", "--api-key", "secret") as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; skipped only outside CI when it cannot be had."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package is not installed")
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    if missing:
        reason = "browser tests need a browser: " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """A function opening the page of a server in a fresh context (empty localStorage)."""
    contexts = []

    def _open(base: str, wait_for_collections: bool = True):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{base}/")
        if wait_for_collections:
            page.wait_for_function("document.querySelector('#collection').options.length > 0")
        return page

    yield _open
    for ctx in contexts:
        ctx.close()


# ---------------------------------------------------------------- helpers


def search_seq(page) -> int:
    return int(page.evaluate("document.body.dataset.searchSeq"))


def wait_search(page, before: int) -> str:
    """Wait for a search after ``before`` to finish with the grid matching the page; its state."""
    page.wait_for_function(
        "n => Number(document.body.dataset.searchSeq) > n && document.body.dataset.state !== 'busy'", arg=before)
    return page.evaluate("document.body.dataset.state")


def grid_ids(page) -> list[str]:
    return page.eval_on_selector_all("#results .result", "els => els.map(e => e.dataset.id)")


def set_k(page, k: int) -> None:
    page.locator("#k").fill(str(k))
    page.locator("#k").press("Tab")  # commits the value: "change"


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw polylines given in canvas fractions (0..1) with the mouse."""
    box = page.locator("#canvas").bounding_box()
    at = lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["height"])
    for (x0, y0), *rest in strokes:
        page.mouse.move(*at(x0, y0))
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(*at(x, y), steps=3)
        page.mouse.up()


def api_ids(answer: dict) -> list[str]:
    return [r["id"] for r in answer["queries"][0]["results"]]


# ---------------------------------------------------------------- tests


def test_drawing_searches_the_canvas_png(open_page, server):
    page = open_page(server)
    assert page.locator("h1").inner_text().strip().endswith("dmwan sketch search")
    assert page.locator("#k").input_value() == "12"
    set_k(page, K)
    before = search_seq(page)
    square = [(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.3)]
    draw(page, [square, [(0.2, 0.8), (0.8, 0.2)]])
    assert wait_search(page, before) == "idle"

    png = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    answer = httpx.post(f"{server}/collections/pics/search", json={"sketches": [png], "k": K}, timeout=30).json()
    assert grid_ids(page) == api_ids(answer) and len(api_ids(answer)) == K
    assert page.evaluate("window.dmwanLastResponse.queries[0].results.map(r => r.id)") == api_ids(answer)
    assert page.locator("#status").inner_text().startswith(f"{K} results in ")
    assert page.eval_on_selector_all("#results .result", "els => els.map(e => Number(e.dataset.rank))") == list(
        range(1, K + 1))

    first, top = page.locator("#results .result").first, answer["queries"][0]["results"][0]
    assert first.get_attribute("href") == top["photo_url"]
    assert (first.get_attribute("target"), first.get_attribute("rel")) == ("_blank", "noopener")
    assert first.locator(".score").inner_text() == f"{top['score']:.3f}"
    assert first.locator(".file").inner_text() == Path(top["path"]).name
    assert first.locator(".label").inner_text() == top["label"]
    page.wait_for_function("(() => { const i = document.querySelector('#results .result img');"
                           " return i.complete && i.naturalWidth > 0; })()")

    # Changing k re-runs the same drawing.
    before = search_seq(page)
    set_k(page, 3)
    assert wait_search(page, before) == "idle"
    answer = httpx.post(f"{server}/collections/pics/search", json={"sketches": [png], "k": 3}, timeout=30).json()
    assert grid_ids(page) == api_ids(answer) and len(grid_ids(page)) == 3

    # Clearing empties the grid without asking the server.
    searches = []
    page.on("request", lambda r: searches.append(r.url) if r.url.endswith("/search") else None)
    page.locator("#clear").click()
    page.wait_for_timeout(600)  # past the debounce
    assert grid_ids(page) == [] and searches == []


def test_upload_matches_dmwan_query(open_page, server, env):
    page = open_page(server)
    set_k(page, K)
    before = search_seq(page)
    page.set_input_files("#upload", str(env["sketch"]))
    assert wait_search(page, before) == "idle"
    assert grid_ids(page) == env["query_ids"]
    assert page.evaluate("window.dmwanLastResponse.mode") == "sketch"
    # The upload shows on the canvas: it is no longer blank white.
    assert page.evaluate("""(() => {
        const c = document.getElementById('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.some(v => v < 200);
    })()""")


def test_text_query(open_page, server):
    has_text_tower = create_model("tiny", seed=0).clip is not None
    info = httpx.get(f"{server}/collections/pics", timeout=10).json()
    assert info["text_search"] is has_text_tower
    page = open_page(server)
    box = page.locator("#text-query input[name=text]")
    if not has_text_tower:
        assert box.is_disabled() and page.locator("#text-query").get_attribute("title")
        return
    set_k(page, K)
    before = search_seq(page)
    box.fill("a blue circle")
    box.press("Enter")
    assert wait_search(page, before) == "idle"
    answer = httpx.post(f"{server}/collections/pics/search", json={"text": "a blue circle", "k": K}, timeout=30).json()
    assert grid_ids(page) == api_ids(answer) and len(grid_ids(page)) == K
    assert page.evaluate("window.dmwanLastResponse.mode") == "text"


def test_non_image_upload_shows_the_server_error(open_page, server, env, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a png\n")
    expected = httpx.post(f"{server}/collections/pics/search", files={"sketch": ("notes.png", bad.read_bytes())},
                          params={"k": K}, timeout=30)
    assert expected.status_code == 415
    message = expected.json()["error"]
    assert message and "\n" not in message

    page = open_page(server)
    error = page.locator("#error")
    assert error.is_hidden() and error.get_attribute("role") == "alert"
    before = search_seq(page)
    page.set_input_files("#upload", str(bad))
    assert wait_search(page, before) == "error"
    assert error.is_visible() and error.inner_text().strip() == message
    page.screenshot(path=str(tmp_path / "error.png"))

    before = search_seq(page)
    page.set_input_files("#upload", str(env["sketch"]))
    assert wait_search(page, before) == "idle"
    assert error.is_hidden()


def test_api_key_prompt(open_page, keyed_server, env):
    assert httpx.get(f"{keyed_server}/collections", timeout=10).status_code == 401
    page = open_page(keyed_server, wait_for_collections=False)
    form = page.locator("#key-form")
    form.wait_for(state="visible")
    page.locator("#api-key").fill("wrong")
    page.locator("#key-form button[type=submit]").click()
    page.wait_for_function("document.getElementById('key-message').textContent.includes('refused')")
    assert form.is_visible()

    page.locator("#api-key").fill("secret")
    page.locator("#key-form button[type=submit]").click()
    page.wait_for_function("document.querySelector('#collection').options.length > 0")
    assert form.is_hidden() and page.evaluate("localStorage.getItem('dmwan.apiKey')") == "secret"

    set_k(page, K)
    before = search_seq(page)
    page.set_input_files("#upload", str(env["sketch"]))
    assert wait_search(page, before) == "idle"
    assert grid_ids(page) == env["query_ids"]
    # Thumbnails cannot go through a plain src with a key: they are fetched and shown as blobs.
    page.wait_for_function("(() => { const i = document.querySelector('#results .result img');"
                           " return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; })()")
