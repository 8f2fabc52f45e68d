"""dmwan-qdrant: zero-shot sketch-based image retrieval (DMWAN) served from Qdrant."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

# In a source checkout (a plain clone, `pip install -e .`, or a Ray job's working directory) the
# subpackages `dmwan_qdrant.training` and `dmwan_qdrant.cli` live in the top-level folders
# `training/` and `cli/`. Adding the repository root to this package's search path lets the same
# import names work there as in an installed wheel, where they sit inside the package.
_root = Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "training" / "__init__.py").is_file():
    __path__.append(str(_root))  # type: ignore[name-defined]  # noqa: F821
