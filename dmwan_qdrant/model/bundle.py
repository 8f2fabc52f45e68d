"""A bundle folder's layout and its config.json record, read without torch.

`dmwan_qdrant.model.checkpoint` writes and loads the weights; this module only names the files
and validates the record, so that a search-only install (ONNX, no torch) reads the same bundles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

BUNDLE_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def read_bundle_record(path: str | Path) -> dict[str, Any]:
    """The bundle's config.json, validated; raises CheckpointError naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a model bundle (expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        record = json.loads((path / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing {CONFIG_FILE}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}/{CONFIG_FILE}: not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != BUNDLE_FORMAT or "model" not in record:
        raise CheckpointError(f"{path}/{CONFIG_FILE}: not a format-{BUNDLE_FORMAT} DMWAN bundle")
    return record
