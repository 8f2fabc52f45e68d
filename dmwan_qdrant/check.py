"""Checking a collection for damage the unchanged-file skip cannot see, and repairing it.

`dmwan ingest` trusts stored payloads to decide that a file is unchanged, so a vector file that
was truncated or garbled, or a collection that lost points with its write-ahead log, looks
complete to it. `check_collection` reads every point back and tests what must hold:

- the model record is there (a query needs it to load the encoder);
- every point can be listed, has a path and a content hash, and its id is the hash's;
- every global vector and every token is finite and of unit norm (cosine vectors are stored
  normalised, so any other norm is damage);
- the engine's count agrees with the points listed, and is not below what the last finished
  ingest left (`Store.ingest_record`).

`repair_collection` rewrites what is damaged: sound points are copied as they are, damaged ones
are embedded again from their files when the file still holds the same bytes, and the points the
collection lost are restored by an ingest of the folders it was filled from. On the embedded
store the repaired collection is written as a new shard and swapped in (`EdgeStore.
rebuild_collection`), so a repair never writes into damaged files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StoreError
from .store import PhotoPoint, Store
from .store.records import StoredPoint

NORM_TOLERANCE = 1e-3
"""How far from 1 a stored norm may be (float32 rounding stays far below it)."""

_PAGE = 256


@dataclass
class CheckReport:
    """What `check_collection` found.

    Attributes:
        collection: the collection checked.
        points: the engine's exact count.
        listed: points the scroll returned.
        expected: points the last finished ingest left, where recorded.
        damaged: ``(point id, why)`` for every point with unreadable or impossible data.
        problems: collection-level problems, one line each.
    """

    collection: str
    points: int = 0
    listed: int = 0
    expected: int | None = None
    damaged: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the collection is intact."""
        return not self.damaged and not self.problems

    @property
    def short(self) -> bool:
        """Whether the collection holds fewer points than its last ingest left."""
        return self.expected is not None and self.points < self.expected

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "collection": self.collection,
            "ok": self.ok,
            "points": self.points,
            "listed": self.listed,
            "expected": self.expected,
            "damaged": [{"id": i, "why": w} for i, w in self.damaged],
            "problems": list(self.problems),
        }


@dataclass
class RepairReport:
    """What `repair_collection` did: points kept as they were, embedded again from their
    files, lost for good (file gone or changed), and restored by re-ingesting the roots."""

    kept: int = 0
    reembedded: int = 0
    lost: list[tuple[str, str]] = field(default_factory=list)
    restored: int = 0


def vector_problem(p: StoredPoint, dim: int, token_dim: int) -> str | None:
    """Why the stored vectors of ``p`` are impossible, or None when they are sound."""
    v, t = p.vector.astype(np.float64), p.tokens.astype(np.float64)  # 1e38 squared overflows f32
    if v.shape != (dim,):
        return f"global vector of shape {v.shape}, expected ({dim},)"
    if not np.isfinite(v).all():
        return "global vector holds NaN or infinite values"
    if abs(float(np.linalg.norm(v)) - 1.0) > NORM_TOLERANCE:
        return f"global vector of norm {float(np.linalg.norm(v)):.4g}, expected 1"
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] != token_dim:
        return f"tokens of shape {t.shape}, expected (n, {token_dim})"
    if not np.isfinite(t).all():
        return "tokens hold NaN or infinite values"
    norms = np.linalg.norm(t, axis=1)
    if np.abs(norms - 1.0).max() > NORM_TOLERANCE:
        return f"a token of norm {float(norms[np.abs(norms - 1.0).argmax()]):.4g}, expected 1"
    return None


def _payload_problem(pid: str, payload: dict[str, Any]) -> str | None:
    from .ingest import point_id

    if not isinstance(payload.get("path"), str):
        return "payload has no path"
    h = payload.get("content_hash")
    if not isinstance(h, str) or len(h) != 64:
        return "payload has no content hash"
    if point_id(h) != pid:
        return "point id does not match its content hash"
    return None


def _read(store: Store, name: str, ids: list[str]) -> Iterator[tuple[str, StoredPoint | None, str | None]]:
    """``(id, point, None)`` for readable points, ``(id, None, why)`` for unreadable ones: a page
    that fails is split until the failing points are found."""
    try:
        points = {p.id: p for p in store.read_points(name, ids)}
    except StoreError as e:
        if len(ids) == 1:
            yield ids[0], None, f"unreadable: {e}"
            return
        half = len(ids) // 2
        yield from _read(store, name, ids[:half])
        yield from _read(store, name, ids[half:])
        return
    for i in ids:
        p = points.get(i)
        yield (i, p, None) if p is not None else (i, None, "listed but cannot be read")


def _walk(store: Store, name: str, report: CheckReport) -> Iterator[tuple[str, StoredPoint | None, str | None]]:
    """Every listed point, read back and judged: ``(id, point or None, why damaged or None)``."""
    info = store.collection_info(name)
    try:
        ids = [pid for pid, _ in store.scroll_payloads(name, [])]
    except StoreError as e:
        report.problems.append(f"points cannot be listed: {e}")
        return
    report.listed = len(ids)
    for start in range(0, len(ids), _PAGE):
        for pid, p, why in _read(store, name, ids[start : start + _PAGE]):
            if p is not None:
                why = _payload_problem(pid, p.payload) or vector_problem(p, info.dim, info.token_dim)
            yield pid, p, why


def check_collection(store: Store, name: str) -> CheckReport:
    """Read every point of ``name`` back and report what is damaged or missing (see module doc).

    Raises:
        CollectionNotFoundError: no such collection.
        StoreDamagedError: the collection cannot be opened at all (e.g. its manifest is lost).
    """
    report = CheckReport(name)
    record = store.get_model_record(name)
    if not record.get("fingerprint"):
        report.problems.append("the model record is missing: queries cannot load the encoder")
    report.points = store.count(name)
    for pid, _p, why in _walk(store, name, report):
        if why is not None:
            report.damaged.append((pid, why))
    _check_counts(store, name, report)
    return report


def _check_counts(store: Store, name: str, report: CheckReport) -> None:
    if report.listed != report.points and not report.problems:
        report.problems.append(f"the engine counts {report.points} points but lists {report.listed}")
    ingest = store.ingest_record(name) or {}
    if isinstance(ingest.get("points"), int):
        report.expected = ingest["points"]
        if report.short:
            report.problems.append(
                f"short: {report.points} points, but the last finished ingest left {report.expected}"
            )


def _sha256(path: str) -> str | None:
    from .ingest import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return None


def _reembed(model: Any, payloads: list[tuple[str, dict[str, Any]]]) -> list[PhotoPoint]:
    """Embed again the photos of these damaged points (files must still hold the same bytes)."""
    from .imageio import load_image
    from .runtime import as_array

    points, images = [], []
    for pid, payload in payloads:
        images.append(load_image(payload["path"]))
        points.append((pid, payload))
    if not points:
        return []
    emb = model.embed_photos(images)
    vectors, tokens = as_array(emb.global_), as_array(emb.tokens)
    return [PhotoPoint(pid, vectors[j], tokens[j], payload) for j, (pid, payload) in enumerate(points)]


def verify_model(store: Store, name: str, model: Any, samples: int = 4) -> int:
    """Check that ``model`` made the vectors of ``name``: embed up to ``samples`` stored photos
    still on disk (same bytes) again and compare with what is stored. Returns how many agreed.

    Raises:
        ModelMismatchError: a photo embeds to another vector, or none could be compared.
    """
    from .errors import ModelMismatchError

    tried: list[tuple[str, dict[str, Any]]] = []
    for pid, payload in store.scroll_payloads(name):
        path = payload.get("path")
        if isinstance(path, str) and _sha256(path) == payload.get("content_hash"):
            tried.append((pid, payload))
            if len(tried) == samples:
                break
    if not tried:
        raise ModelMismatchError(
            f"cannot tell whether this model filled '{name}': none of its photos is on disk unchanged"
        )
    stored = {p.id: p.vector for p in store.read_points(name, [pid for pid, _ in tried])}
    for p in _reembed(model, tried):
        cos = float(np.dot(stored[p.id], p.vector / np.linalg.norm(p.vector)))
        if cos < 0.99:
            raise ModelMismatchError(
                f"collection '{name}' was not filled by this model (photo {p.payload['path']} "
                f"embeds to cosine {cos:.3f} of its stored vector)"
            )
    return len(tried)


def repair_collection(store: Store, name: str, model: Any, report: CheckReport | None = None) -> RepairReport:
    """Make ``name`` intact again (see module doc); ``model`` is the collection's encoder.

    Raises:
        CollectionNotFoundError, StoreDamagedError, ModelMismatchError, DiskFullError.
    """
    from .encoder import check_same_model
    from .errors import ImageError
    from .ingest import ingest
    from .ingest.records import root_patterns

    check_same_model(name, store.get_model_record(name), model)
    report = report or check_collection(store, name)
    out = RepairReport()
    bad = dict(report.damaged)
    payloads: dict[str, dict[str, Any]] = {}
    for pid in bad:  # the payload may still be readable where the vectors are not
        try:
            found = store.retrieve(name, [pid])
        except StoreError:
            found = []
        if found:
            payloads[pid] = found[0]

    def fixed() -> Iterator[list[PhotoPoint]]:
        todo: list[tuple[str, dict[str, Any]]] = []
        for pid in bad:
            payload = payloads.get(pid, {})
            path = payload.get("path")
            if not isinstance(path, str) or _sha256(path) != payload.get("content_hash"):
                out.lost.append((pid, f"{path or 'no path'}: file gone or changed"))
                continue
            todo.append((pid, payload))
        for start in range(0, len(todo), 32):
            try:
                batch = _reembed(model, todo[start : start + 32])
            except ImageError as e:
                out.lost.append(("", str(e)))
                continue
            out.reembedded += len(batch)
            yield batch

    def sound() -> Iterator[list[PhotoPoint]]:
        page: list[PhotoPoint] = []
        for pid, p, why in _walk(store, name, CheckReport(name)):
            if p is None or why is not None:
                continue
            page.append(PhotoPoint(p.id, p.vector, p.tokens, p.payload))
            if len(page) == _PAGE:
                out.kept += len(page)
                yield page
                page = []
        out.kept += len(page)
        if page:
            yield page

    # A collection that is only short needs no new shard: the re-ingest below adds what is gone.
    structural = [line for line in report.problems if not line.startswith("short:")]
    if bad or structural:
        rebuild = getattr(store, "rebuild_collection", None)
        if rebuild is not None:
            rebuild(name, _chain(sound(), fixed()))
        else:  # a server's own storage is sound: rewrite the damaged points in place
            store.delete_points(name, list(bad))
            for batch in fixed():
                store.upsert(name, batch)
            out.kept = report.listed - len(bad)
    if report.short or out.lost:
        ingest_rec = store.ingest_record(name) or {}
        roots = [r for r in ingest_rec.get("roots", []) if isinstance(r, str) and Path(r).exists()]
        if roots:
            before = store.count(name)
            for root in roots:  # each with the patterns it was ingested with
                include, exclude = root_patterns(ingest_rec, root)
                ingest([root], store, name, model, label_from_folder=bool(ingest_rec.get("label_from_folder")),
                       include=include, exclude=exclude)
            out.restored = store.count(name) - before
    ingest_rec = store.ingest_record(name)
    if ingest_rec is not None:  # what is lost for good was reported once; the record follows
        store.set_ingest_record(name, {**ingest_rec, "points": store.count(name)})
    return out


def _chain(*pages: Iterator[list[PhotoPoint]]) -> Iterator[list[PhotoPoint]]:
    for it in pages:
        yield from it
