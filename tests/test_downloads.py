"""Pretrained weights from the Hub: a machine without the network gets one line at once, naming
the file to fetch and the flag to pass; a cached file is used without a request."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from dmwan_qdrant.errors import WeightsUnavailableError
from dmwan_qdrant.model import downloads

# A port nothing listens on: the connection is refused at once, as on a machine whose Hub is blocked.
NO_HUB = {"HF_ENDPOINT": "http://127.0.0.1:9"}


def test_model_create_without_the_hub_fails_in_one_line_within_seconds(tmp_path):
    env = {**os.environ, **NO_HUB, "HF_HUB_CACHE": str(tmp_path / "cache")}
    for args, file, flag in (
        (["--preset", "vit_b16", "--pretrained", "openai"], "open_clip_pytorch_model.bin", "--pretrained"),
        (["--preset", "vit_b16_timm", "--pretrained", "hub"], "pytorch_model.bin", "--pretrained"),
    ):
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "dmwan_qdrant.cli", "model", "create", *args, "-o", tmp_path / "b"],
                           capture_output=True, text=True, env=env, timeout=120)
        took = time.monotonic() - t0
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) <= 3 and took < 10, (took, r.stderr)
        assert lines[-1].startswith("error: cannot fetch") and f"/resolve/main/{file}" in lines[-1]
        assert f"{flag} /path/to/{file}" in lines[-1] and "Retry" not in r.stderr and "WARNING" not in r.stderr
        assert not (tmp_path / "b").exists()


def _cache_entry(cache, repo: str, name: str) -> str:
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / name).write_bytes(b"weights")
    return str(snapshot / name)


def test_a_cached_file_is_used_offline_without_a_request(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    for key, value in NO_HUB.items():
        monkeypatch.setenv(key, value)
    path = _cache_entry(tmp_path, "org/weights", "model.safetensors")
    assert downloads.cached_file("org/weights", ["open_clip_model.safetensors", "model.safetensors"]) == path
    monkeypatch.setattr(downloads, "hub_reachable", lambda timeout=0: pytest.fail("asked the Hub"))
    with downloads.hub_download("w", "org/weights", ["model.safetensors"]):
        assert constants.HF_HUB_OFFLINE  # the library's own lookup goes to the cache only
    assert not constants.HF_HUB_OFFLINE


def test_not_cached_and_unreachable_raises_before_the_library_tries(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(downloads, "hub_reachable", lambda timeout=0: False)
    with pytest.raises(WeightsUnavailableError) as info:
        with downloads.hub_download("CLIP weights", "org/clip", ["a.safetensors", "b.bin"], "--text-pretrained"):
            pytest.fail("the download ran")
    assert "resolve/main/b.bin" in str(info.value) and "--text-pretrained /path/to/b.bin" in str(info.value)
    monkeypatch.setattr(downloads, "hub_reachable", lambda timeout=0: True)
    with downloads.hub_download("CLIP weights", "org/clip", ["a.safetensors"]):
        assert not constants.HF_HUB_OFFLINE  # online: the library downloads as usual
