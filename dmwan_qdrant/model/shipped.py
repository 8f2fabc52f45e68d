"""The sketch model that ships inside the package: ``--model dmwan-sketch``, no download.

The bundle lives in the package's ``shipped/`` folder (config, model card, fp16 weights for the
torch runtime and ONNX graphs for the search-only install). It is built from registry material
by ``scripts/build_sketch_model.py``; its card (``dmwan model info dmwan-sketch``) records the
data, the licences, the split and the figures. A collection filled with it records the name, so
a query on another install or in another virtual environment finds the same model.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError

#: The name every ``--model`` accepts for the shipped bundle.
SHIPPED_MODEL = "dmwan-sketch"


def shipped_folder(name: str = SHIPPED_MODEL) -> Path:
    """Where the shipped bundle ``name`` lies in this install (it may be missing)."""
    return Path(__file__).resolve().parent.parent / "shipped" / name


def is_shipped_name(ref: str | os.PathLike) -> bool:
    """Whether ``ref`` is the shipped model's name (and not a folder of that name here)."""
    return isinstance(ref, str) and ref == SHIPPED_MODEL and not Path(ref).is_dir()


def shipped_available(name: str = SHIPPED_MODEL) -> bool:
    """Whether this install carries the shipped bundle ``name``."""
    return (shipped_folder(name) / "config.json").is_file()


def shipped_bundle(name: str = SHIPPED_MODEL) -> Path:
    """The folder of the shipped bundle ``name``.

    Raises:
        CheckpointError: this install lacks it (a source checkout without the built model).
    """
    if not shipped_available(name):
        raise CheckpointError(f"the shipped model {name!r} is not in this install ({shipped_folder(name)}): "
                              "reinstall dmwan-qdrant, or build it with scripts/build_sketch_model.py")
    return shipped_folder(name)
