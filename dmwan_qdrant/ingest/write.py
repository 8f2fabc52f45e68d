"""Writing decoded photos as points: classify each against the collection, embed, upsert.

`BatchWriter` is the one writer of both ingest paths. It is given a decoded batch and a function
that embeds chosen rows of it: the single-process run embeds them there, the Ray pipeline hands
over embeddings its actor pool already computed. A point's vectors and payload go in one upsert,
so a point that exists is complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..point_ids import point_id
from ..store import PhotoPoint, Store
from .records import ALIASES, add_aliases, alias_list
from .report import IngestReport

Embed = Callable[[list[int]], tuple[np.ndarray, np.ndarray]]
"""Embeds the given rows of a batch's good items: ``(global vectors (n, dim), tokens (n, t, d))``."""

PAYLOAD_FIELDS = ("path", "content_hash", "size", "mtime", "mtime_ns", "width", "height")
"""The fields of a decoded item that a point's payload keeps."""


class BatchWriter:
    """Writes decoded batches into ``collection`` and counts what it did in ``report``.

    Args:
        store: an open `Store` with the collection created.
        collection: the collection name.
        label_from_folder: store each file's parent folder name as ``label``.
        report: the run's report, updated in place.
    """

    def __init__(self, store: Store, collection: str, label_from_folder: bool, report: IngestReport) -> None:
        self.store = store
        self.collection = collection
        self.label_from_folder = label_from_folder
        self.report = report
        self.written: set[str] = set()
        """Ids written, or confirmed as another file's duplicate, by this writer."""

    def write(self, items: Sequence[dict[str, Any]], embed: Embed) -> None:
        """Classify one decoded batch (`decode_photo` dicts, errors included) against the
        collection, embed the rows that must be written and upsert them."""
        report = self.report
        good = [it for it in items if "error" not in it]
        for it in items:
            if "error" in it:
                report.failed.append((it["path"], it["error"]))
            else:
                it["id"] = point_id(it["content_hash"])
        report.decoded += len(good)
        if not good:
            return
        ids = list(dict.fromkeys(it["id"] for it in good))
        in_store = {
            point_id(p["content_hash"]): p for p in self.store.retrieve(self.collection, ids) if "content_hash" in p
        }
        rows: list[int] = []  # rows of `good` to embed and write
        new_aliases: dict[str, list[dict[str, Any]]] = {}
        for row, it in enumerate(good):
            pid = it["id"]
            prev = in_store.get(pid)
            alias = {"path": it["path"], "size": it["size"], "mtime_ns": it["mtime_ns"]}
            if pid in self.written:  # same content met earlier in this run
                report.duplicates += 1
                new_aliases.setdefault(pid, []).append(alias)
            elif prev is not None and prev.get("path") != it["path"] and _still_there(prev):
                report.duplicates += 1  # the stored file still exists unchanged: keep it as it is
                self.written.add(pid)
                new_aliases.setdefault(pid, []).append(alias)
            else:
                # New content; or a rename/move (the stored path is gone or holds other bytes
                # now); or a touched file (same bytes, new mtime). All are (re)written.
                if prev is None:
                    report.added += 1
                else:
                    report.updated += 1
                rows.append(row)
                self.written.add(pid)
        if rows:
            vectors, tokens = embed(rows)
            self.store.upsert(self.collection, [self._point(good[r], vectors[j], tokens[j], in_store)
                                                for j, r in enumerate(rows)])
        for pid, added in new_aliases.items():
            add_aliases(self.store, self.collection, pid, added)

    def _point(self, it: dict[str, Any], vector: np.ndarray, tokens: np.ndarray,
               in_store: dict[str, dict[str, Any]]) -> PhotoPoint:
        payload = {k: it[k] for k in PAYLOAD_FIELDS}
        if self.label_from_folder:
            payload["label"] = Path(it["path"]).parent.name
        known = [a for a in alias_list(in_store.get(it["id"], {})) if a["path"] != it["path"]]
        if known:  # a rewritten point keeps the duplicates known of its content
            payload[ALIASES] = known
        return PhotoPoint(it["id"], vector, tokens, payload)


def _still_there(payload: dict[str, Any]) -> bool:
    """Whether the file a stored point names still exists with the stored size and mtime."""
    try:
        st = os.stat(payload["path"])
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return st.st_size == payload.get("size") and st.st_mtime_ns == payload.get("mtime_ns")
