"""Debian packages as data: downloaded with ``apt-get download`` and unpacked with ``dpkg-deb``,
never installed. Each pinned version is unpacked once into a cache folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import DatasetError

#: Where downloaded packages and their unpacked trees are kept.
CACHE = Path.home() / ".cache" / "dmwan-qdrant" / "apt"


def fetch_deb(package: str, version: str, cache: Path = CACHE) -> Path:
    """The root of ``package`` at ``version``, unpacked (``<root>/usr/share/...``).

    Raises:
        DatasetError: apt-get or dpkg-deb is missing, or cannot fetch or unpack the package.
    """
    root = cache / f"{package}_{version}"
    if root.is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    pattern = f"{package}_{version.replace(':', '%3a')}_*.deb"
    tmp = cache / f".{root.name}.tmp"
    try:
        if not list(cache.glob(pattern)):
            subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=cache, check=True)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(next(cache.glob(pattern))), str(tmp)], check=True)
    except (OSError, StopIteration, subprocess.CalledProcessError) as exc:
        raise DatasetError(f"cannot fetch {package}={version} with apt-get/dpkg-deb: {exc}") from None
    tmp.rename(root)
    return root
