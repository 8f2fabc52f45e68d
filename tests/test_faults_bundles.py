"""Model bundles are as readable as any other file the user writes (the umask decides, not 0700)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dmwan_qdrant.model import load_model, save_model


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("overwrite", [False, True])
def test_bundle_gets_umask_permissions(tiny_model, tmp_path, umask_022, overwrite):
    if overwrite:  # replacing a bundle must not bring back private permissions either
        save_model(tiny_model, tmp_path / "bundle")
    path = save_model(tiny_model, tmp_path / "bundle")
    files = sorted(p.name for p in path.iterdir())
    assert files == ["config.json", "model.safetensors"]
    assert mode(path) == 0o755
    assert {name: mode(path / name) for name in files} == {name: 0o644 for name in files}
    assert load_model(path).fingerprint  # still a valid bundle


def test_a_stricter_umask_is_obeyed(tiny_model, tmp_path):
    old = os.umask(0o077)
    try:
        path = save_model(tiny_model, tmp_path / "bundle")
    finally:
        os.umask(old)
    assert mode(path) == 0o700 and mode(path / "config.json") == 0o600
