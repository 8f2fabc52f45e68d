"""`hf-hub:ORG/NAME[@REVISION]` bundles: names, the hub cache, offline use and one-line errors.

No test reaches the internet: the hub is a cache folder laid out as huggingface_hub lays it out,
a closed local port, or a small stub of the Hub's HTTP API on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from cli_helpers import one_line_error

from dmwan_qdrant.errors import CheckpointError, UsageError, WeightsUnavailableError
from dmwan_qdrant.model import create_model, load_model, model_fingerprint, save_model
from dmwan_qdrant.model.hub import (
    HUB_PREFIX,
    fetch_bundle,
    hub_cache_dir,
    is_hub_name,
    parse_hub_name,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
FORM = "hf-hub:ORG/NAME[@REVISION]"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, str]:
    """One tiny bundle folder and the fingerprint of the model saved in it."""
    model = create_model("tiny", seed=0)
    path = save_model(model, tmp_path_factory.mktemp("bundle") / "tiny")
    return path, model_fingerprint(model)


@pytest.fixture(autouse=True)
def hub_env(monkeypatch, tmp_path) -> Path:
    """An empty hub cache of the test's own, online, with no endpoint set; the cache folder."""
    import huggingface_hub.constants

    cache = tmp_path / "hub-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: do not inherit it from the shell.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return cache


def _files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def place_in_cache(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = COMMIT) -> Path:
    """Lay ``files`` out as huggingface_hub's cache does (blobs, snapshot symlinks, a ref)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# Names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("hf-hub:org/name", ("org/name", None)),
        ("hf-hub:Org-1/my_model.v2@v1.0", ("Org-1/my_model.v2", "v1.0")),
        (f"hf-hub:org/name@{COMMIT}", ("org/name", COMMIT)),
        ("hf-hub:org/name@refs/pr/3", ("org/name", "refs/pr/3")),
    ],
)
def test_parse_good_names(ref, expected):
    assert is_hub_name(ref)
    assert parse_hub_name(ref) == expected


@pytest.mark.parametrize(
    "ref",
    ["hf-hub:", "hf-hub:name", "hf-hub:a/b/c", "hf-hub:/name", "hf-hub:org/", "hf-hub:org/na me",
     "hf-hub:org--x/name", "hf-hub:org/name.", "hf-hub:org/name@", "hf-hub:org/name@a b", "org/name"],
)
def test_parse_malformed_names(ref):
    with pytest.raises(UsageError) as exc:
        parse_hub_name(ref)
    assert FORM in one_line(exc)
    assert exc.value.exit_code == 2


def test_is_hub_name():
    assert HUB_PREFIX == "hf-hub:"
    assert not is_hub_name(Path("hf-hub:org/name"))  # a path is a folder, whatever it is called
    assert not is_hub_name("./bundles/tiny")
    assert not is_hub_name("hf_hub:org/name")


def test_cache_dir_is_read_from_the_environment_now(monkeypatch, tmp_path):
    assert hub_cache_dir() == tmp_path / "hub-cache"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert hub_cache_dir() == tmp_path / "user" / ".cache" / "huggingface" / "hub"


# The cache, offline ------------------------------------------------------------------------------


def test_offline_uses_a_cached_bundle(monkeypatch, hub_env, bundle):
    path, fingerprint = bundle
    snapshot = place_in_cache(hub_env, "org/name", _files_of(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = fetch_bundle("hf-hub:org/name")
    assert folder.resolve() == snapshot.resolve()
    assert fetch_bundle(f"hf-hub:org/name@{COMMIT}").resolve() == snapshot.resolve()
    assert load_model(folder).fingerprint == fingerprint
    # An explicit cache_dir wins over the environment.
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_env.parent / "elsewhere"))
    assert fetch_bundle("hf-hub:org/name", cache_dir=hub_env).resolve() == snapshot.resolve()


def test_offline_and_not_cached(monkeypatch, hub_env, bundle):
    place_in_cache(hub_env, "org/name", _files_of(bundle[0]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for ref in ("hf-hub:org/missing", f"hf-hub:org/name@{OTHER_COMMIT}", "hf-hub:org/name@v2"):
        with pytest.raises(WeightsUnavailableError) as exc:
            fetch_bundle(ref)
        message = one_line(exc)
        assert ref in message and str(hub_env) in message
        assert "HF_HUB_OFFLINE" in message and "--model" in message
        assert exc.value.exit_code == 5


def test_cached_snapshot_that_is_not_a_dmwan_bundle(monkeypatch, hub_env, bundle):
    weights = (bundle[0] / "model.safetensors").read_bytes()
    place_in_cache(hub_env, "org/bert", {"config.json": b'{"model_type": "bert"}', "model.safetensors": weights})
    place_in_cache(hub_env, "org/half", {"config.json": (bundle[0] / "config.json").read_bytes()})
    place_in_cache(hub_env, "org/junk", {"config.json": (bundle[0] / "config.json").read_bytes(),
                                         "model.safetensors": b"not safetensors at all"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as exc:
        fetch_bundle("hf-hub:org/bert")
    assert "hf-hub:org/bert is not a dmwan model bundle" in one_line(exc)
    with pytest.raises(CheckpointError) as exc:
        fetch_bundle("hf-hub:org/half")
    assert "model.safetensors" in one_line(exc) and "internet" in str(exc.value)
    with pytest.raises(CheckpointError) as exc:
        fetch_bundle("hf-hub:org/junk")
    assert "corrupted" in one_line(exc)


# The network -------------------------------------------------------------------------------------


def test_hub_unreachable_and_not_cached(monkeypatch):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as exc:
        fetch_bundle("hf-hub:org/name")
    assert time.monotonic() - start < 10
    message = one_line(exc)
    assert "cannot be reached" in message and endpoint in message and "--model" in message


class StubHub:
    """The few Hub endpoints `snapshot_download` calls, serving in-memory repositories.

    ``GET /api/models/{repo}/revision/{rev}`` (id, sha, siblings), ``GET /api/models/{repo}/tree/{rev}``
    (the file list) and ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` (X-Repo-Commit, ETag,
    Content-Length). Errors carry ``X-Error-Code`` as the Hub's do: RepoNotFound, RevisionNotFound,
    GatedRepo, EntryNotFound; ``org/broken`` answers 500.
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.gated: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.handle(self, body=False)

            def do_GET(self) -> None:
                hub.handle(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def send(handler, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        handler.send_response(status)
        for key, value in {"Content-Length": str(len(data)), **headers}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def error(self, handler, status: int, code: str | None, body: bool) -> None:
        data = json.dumps({"error": f"{code or 'Internal'} error"}).encode()
        headers = {"Content-Type": "application/json", **({"X-Error-Code": code} if code else {})}
        self.send(handler, status, data, headers, body)

    def handle(self, handler, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.requests.append((handler.command, path))
        if path.startswith("/api/models/"):  # /api/models/{org}/{name}/{revision|tree}/{rev}
            parts = path.removeprefix("/api/models/").split("/", 3)
            kind, name = (parts[2] if len(parts) == 4 and parts[2] in ("revision", "tree") else None), ""
        else:  # /{org}/{name}/resolve/{rev}/{file}
            parts = path.removeprefix("/").split("/", 4)
            kind, name = ("resolve" if len(parts) == 5 and parts[2] == "resolve" else None), parts[-1]
        if kind is None:
            return self.error(handler, 404, None, body)
        repo_id, revision = f"{parts[0]}/{parts[1]}", parts[3]
        if repo_id == "org/broken":
            return self.error(handler, 500, None, body)
        if repo_id not in self.repos:
            return self.error(handler, 404, "RepoNotFound", body)
        if repo_id in self.gated:
            return self.error(handler, 401, "GatedRepo", body)
        if revision not in ("main", COMMIT):
            return self.error(handler, 404, "RevisionNotFound", body)
        files = self.repos[repo_id]
        commit = {"X-Repo-Commit": COMMIT}
        if kind == "revision":
            info = {"id": repo_id, "sha": COMMIT, "siblings": [{"rfilename": name} for name in files]}
            return self.send(handler, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
        if kind == "tree":
            tree = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in files.items()]
            return self.send(handler, 200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
        if name not in files:
            return self.send(handler, 404, b"", {**commit, "X-Error-Code": "EntryNotFound"}, body)
        etag = f'"{hashlib.sha256(files[name]).hexdigest()}"'
        return self.send(handler, 200, files[name], {**commit, "ETag": etag}, body)


@pytest.fixture
def stub_hub(monkeypatch, bundle):
    hub = StubHub()
    files = _files_of(bundle[0])
    hub.repos["org/name"] = {**files, "README.md": b"# tiny\n", "extra.bin": b"x" * 100, ".gitattributes": b""}
    hub.repos["org/gated"] = files
    hub.repos["org/bert"] = {"config.json": b'{"model_type": "bert"}', "model.safetensors": files["model.safetensors"]}
    hub.repos["org/half"] = {"config.json": files["config.json"]}
    hub.repos["org/empty"] = {"pytorch_model.bin": b"weights of another kind"}
    hub.gated.add("org/gated")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    yield hub
    hub.close()


def test_first_fetch_downloads_then_the_cache_serves(monkeypatch, hub_env, bundle, stub_hub):
    folder = fetch_bundle("hf-hub:org/name")
    assert folder == (hub_env / "models--org--name" / "snapshots" / COMMIT).resolve()
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert load_model(folder).fingerprint == bundle[1]
    downloads = [r for r in stub_hub.requests if r[0] == "GET" and "/resolve/" in r[1]]
    assert sorted(p.rsplit("/", 1)[1] for _, p in downloads) == ["README.md", "config.json", "model.safetensors"]

    # Online again: the revision is looked up, nothing is downloaded again.
    stub_hub.requests.clear()
    assert fetch_bundle("hf-hub:org/name") == folder
    assert [r for r in stub_hub.requests if "/resolve/" in r[1]] == []
    # A commit needs no look-up at all.
    stub_hub.requests.clear()
    assert fetch_bundle(f"hf-hub:org/name@{COMMIT}") == folder
    assert stub_hub.requests == []

    # Offline: the cache only.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch_bundle("hf-hub:org/name") == folder
    assert stub_hub.requests == []
    # Hub unreachable, not offline: the cached snapshot too.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert fetch_bundle("hf-hub:org/name") == folder
    assert load_model(folder).fingerprint == bundle[1]


@pytest.mark.parametrize(
    "ref, words",
    [
        ("hf-hub:org/missing", ["was not found", "check the name", "--model"]),
        ("hf-hub:org/name@v9", ["revision 'v9' was not found", "--model"]),
        ("hf-hub:org/gated", ["is gated", "HF_TOKEN", "--model"]),
        ("hf-hub:org/broken", ["answered", "500", "--model"]),
    ],
)
def test_hub_errors_are_one_line(ref, words, hub_env, stub_hub):
    with pytest.raises(WeightsUnavailableError) as exc:
        fetch_bundle(ref)
    message = one_line(exc)
    assert message.startswith(ref)
    for word in words:
        assert word in message
    assert not (hub_env / "models--org--name" / "snapshots").exists()


def test_hub_repository_that_is_not_a_dmwan_bundle(stub_hub):
    with pytest.raises(CheckpointError) as exc:
        fetch_bundle("hf-hub:org/bert")
    assert "hf-hub:org/bert is not a dmwan model bundle" in one_line(exc)
    with pytest.raises(CheckpointError) as exc:
        fetch_bundle("hf-hub:org/half")
    assert "not a dmwan model bundle" in one_line(exc) and "no model.safetensors" in str(exc.value)
    with pytest.raises(CheckpointError) as exc:  # none of the bundle's files: no snapshot folder at all
        fetch_bundle("hf-hub:org/empty")
    assert "hf-hub:org/empty is not a dmwan model bundle" in one_line(exc)


def test_cli_takes_hub_names_and_a_collection_remembers_them(monkeypatch, hub_env, bundle, tmp_path, capsys):
    """Ingest by hub name, offline from the cache; on a "new machine" (another cache, the first
    one gone) a query without --model fetches the recorded name again."""
    import shutil

    from PIL import Image

    from cli_helpers import dmwan

    path, fingerprint = bundle
    place_in_cache(hub_env, "org/tiny", _files_of(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (24, 24), (80 * i, 40, 200 - 60 * i)).save(photos / f"{i}.png")
    store = tmp_path / "store"
    code, _, err = dmwan(capsys, "ingest", photos, "-c", "c", "--model", "hf-hub:org/tiny", "--store", store)
    assert code == 0, err
    code, out, err = dmwan(capsys, "collections", "info", "c", "--store", store, "--json")
    model = json.loads(out)["model"]
    assert model["name"] == "hf-hub:org/tiny" and model["fingerprint"] == fingerprint
    code, out, err = dmwan(capsys, "model", "info", "hf-hub:org/tiny", "--json")
    assert code == 0 and json.loads(out)["name"] == "hf-hub:org/tiny"

    moved = tmp_path / "other-machine-cache"
    shutil.move(str(hub_env), moved)
    monkeypatch.setenv("HF_HUB_CACHE", str(moved))
    code, out, err = dmwan(capsys, "query", photos / "1.png", "-c", "c", "--store", store, "--paths", "-k", "1")
    assert code == 0, err
    assert Path(out.strip()).parent == photos  # a random tiny model: which photo is not the point
    shutil.rmtree(moved)  # nowhere to fetch from: one line that says so
    code, _, err = dmwan(capsys, "query", photos / "1.png", "-c", "c", "--store", store)
    assert code == 5 and "HF_HUB_OFFLINE" in one_line_error(err)
