"""The crash-safe life of an embedded collection's folder: staging, swaps, trash and recovery.

Layout of a store folder::

    <path>/.lock                         exclusive flock while a process has the store open
    <path>/<collection>/collection.json  manifest: dims, the model record, the ingest record
    <path>/<collection>/shard/           the qdrant-edge shard (segments, WAL, edge_config.json)
    <path>/<collection>/shard/dmwan-collection.json   a copy of the manifest, kept with the shard

Every change of a collection folder is a rename, so a process killed at any moment leaves either
the old state or the new one plus a dot-folder that the next writer clears (`clear_leftovers`):

- a collection is built complete in ``.creating-<uuid>/`` and renamed into place (`staging`,
  `move_into_place`); a rebuild swaps a complete new folder in for the old one (`swap_in`);
- a deleted collection is renamed to ``.deleting-<uuid>`` first (`trash`);
- a folder whose manifest is gone (deleted by hand, lost in a copy) is never removed or
  overwritten: it is reported as damaged (`check_folder`, `damaged_folders`), and
  `recover_folder` rebuilds the manifest from the copy inside the shard.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dmwan_qdrant.errors import StoreDamagedError
from dmwan_qdrant.store.disk import write_atomic
from dmwan_qdrant.store.manifest import MANIFEST, SHARD_DIR, SHARD_MANIFEST, damaged_message, recover_manifest

DELETING = ".deleting-"
CREATING = ".creating-"
REPLACED = ".replaced-"  # + 32 hex digits + "-" + name: the old folder during a rebuild swap
_NO_MANIFEST = "has no manifest (collection.json)"


def clear_leftovers(root: Path) -> None:
    """Finish what a killed process left half done in the store ``root``: a delete, a create,
    a rebuild swap."""
    for old in root.glob(REPLACED + "*"):
        name = old.name[len(REPLACED) + 33 :]
        if (root / name).exists():  # the swap finished: the old folder is garbage
            shutil.rmtree(old, ignore_errors=True)
        elif name:  # killed between the two renames: the old collection comes back
            os.rename(old, root / name)
    for pattern in (DELETING + "*", CREATING + "*"):
        for leftover in root.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def staging(root: Path) -> Iterator[Path]:
    """A fresh dot-folder name in ``root`` to build a collection in; whatever is left of it is
    removed on the way out (after `move_into_place` or `swap_in`, nothing is)."""
    folder = root / f"{CREATING}{uuid.uuid4().hex}"
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def move_into_place(built: Path, folder: Path) -> None:
    """Rename the complete collection ``built`` to ``folder``, which must not hold anything."""
    with contextlib.suppress(FileNotFoundError):
        folder.rmdir()  # an empty folder of that name holds nothing to keep
    os.rename(built, folder)


def swap_in(built: Path, folder: Path, keep: Path | None = None) -> None:
    """Replace the collection ``folder`` by the complete ``built`` one: two renames, the old
    folder kept under a name that `clear_leftovers` puts back if a crash comes between them.

    With ``keep`` (a free collection folder), the old collection is renamed there, its manifest
    renamed with it, instead of being removed; a crash right after the swap may lose that copy
    (`clear_leftovers` removes it), never the new collection.
    """
    replaced = folder.parent / f"{REPLACED}{uuid.uuid4().hex}-{folder.name}"
    os.rename(folder, replaced)
    os.rename(built, folder)
    if keep is None:
        shutil.rmtree(replaced, ignore_errors=True)
        return
    manifest = json.loads((replaced / MANIFEST).read_text())
    manifest["name"] = keep.name
    text = json.dumps(manifest, indent=2, sort_keys=True)
    write_atomic(replaced / SHARD_DIR / SHARD_MANIFEST, text)
    write_atomic(replaced / MANIFEST, text)
    os.rename(replaced, keep)


def trash(folder: Path) -> None:
    """Delete a collection folder: renamed away first, so the collection disappears at once and
    an interrupted removal leaves a folder the next open clears, never half a collection."""
    gone = folder.parent / f"{DELETING}{uuid.uuid4().hex}"
    os.replace(folder, gone)
    shutil.rmtree(gone, ignore_errors=True)


def is_collection(folder: Path) -> bool:
    """Whether ``folder`` holds a collection with its manifest."""
    return not folder.name.startswith(".") and (folder / MANIFEST).is_file()


def check_folder(folder: Path, name: str) -> bool:
    """Whether ``folder`` is a collection; a folder that lost its manifest but holds a shard
    raises `StoreDamagedError`, so that no caller takes it for free."""
    if (folder / MANIFEST).is_file():
        return True
    if (folder / SHARD_DIR).exists():
        raise StoreDamagedError(damaged_message(folder, name, _NO_MANIFEST))
    return False


def damaged_folders(root: Path) -> dict[str, str]:
    """The folders in ``root`` that hold a shard but no manifest, with one line each on how to
    recover them."""
    out: dict[str, str] = {}
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or not p.is_dir() or (p / MANIFEST).is_file():
            continue
        if (p / SHARD_DIR).exists():
            out[p.name] = damaged_message(p, p.name, _NO_MANIFEST)
    return out


def recover_folder(folder: Path, name: str, model: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """Rebuild the lost manifest of the collection ``folder`` (`recover_manifest`); returns it
    and whether it came from the shard's own copy (else from ``model``, to be verified)."""
    had_copy = (folder / SHARD_DIR / SHARD_MANIFEST).is_file()
    return recover_manifest(folder, name, model), had_copy


def undo_recovery(folder: Path) -> None:
    """Take back a manifest `recover_folder` wrote, leaving the folder as it was."""
    for f in (folder / MANIFEST, folder / SHARD_DIR / SHARD_MANIFEST):
        f.unlink(missing_ok=True)
