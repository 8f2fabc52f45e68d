"""`EdgeStore`: the embedded default, one qdrant-edge shard per collection in a local folder.

The folder layout and its crash-safe changes are in `dmwan_qdrant.store.folders`, the manifest
in `dmwan_qdrant.store.manifest`; this module is the engine: shards opened, written and searched.

Every write first checks the free space on the store's disk (`dmwan_qdrant.store.disk`): the
engine's memory-mapped files would otherwise kill the process with SIGBUS on a full disk. A store
opened ``read_only`` that cannot be opened in place (read-only medium, no write permission, full
disk) is searched through a private sparse copy in the temp folder.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import qdrant_edge as qe

from dmwan_qdrant.errors import CollectionNotFoundError, DiskFullError, DmwanError, StoreError
from dmwan_qdrant.store import disk, folders
from dmwan_qdrant.store.base import Store
from dmwan_qdrant.store.checks import Row, check_name, check_points
from dmwan_qdrant.store.edge_config import edge_config, field_index_params, move_indexes_to_disk
from dmwan_qdrant.store.filters import engine_filter
from dmwan_qdrant.store.lock import FolderLock, in_use_error
from dmwan_qdrant.store.manifest import (
    MANIFEST,
    SHARD_DIR,
    manifest_index,
    new_manifest,
    read_manifest,
    write_manifest,
)
from dmwan_qdrant.store.readonly import PrivateCopy
from dmwan_qdrant.store.records import GLOBAL, INDEXED_FIELDS, TOKENS, CollectionSpec, EngineInfo, PhotoPoint, SearchPlan
from dmwan_qdrant.store.replacement import Replacement

_PAGE = 1024


class EdgeStore(Store):
    """Embedded store in the folder ``path``, locked to this process.

    Args:
        path: store folder (created if missing, unless ``read_only``).
        batch_size: points per engine update in `upsert`.
        read_only: only read. The folder must exist, nothing is created in it, and writes raise
            `StoreError`. A store that cannot be opened in place (read-only medium, no write
            permission, full disk) is searched through a private copy; `notice` then says so.

    Raises:
        StoreInUseError: another process (or another `EdgeStore` here) has the folder open.
        StoreError: ``read_only`` and there is no store folder at ``path``.
    """

    backend = "edge"

    def __init__(self, path: str | Path, batch_size: int = 512, read_only: bool = False) -> None:
        self.path = Path(path).expanduser().resolve()
        super().__init__(str(self.path), batch_size)
        self.read_only = bool(read_only)
        self.notice: str | None = None
        """One line on how the store was opened, when not in place (for the CLI to show)."""
        self._copy: PrivateCopy | None = None  # where shards are opened, when not in place
        self._lock: FolderLock | None = None
        self._shards: dict[str, qe.EdgeShard] = {}
        if read_only:
            if not self.path.is_dir():
                raise StoreError(f"no store at {self.path} (check --store or $DMWAN_STORE)")
            why = disk.why_not_writable(self.path)
            if why is not None:
                self._copy = PrivateCopy(self.path, why)
                self.notice = self._copy.notice
                return
        else:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create store folder {self.path}: {e.strerror}") from None
        self._lock = FolderLock(self.path)
        self._lock.acquire()
        if not read_only:
            folders.clear_leftovers(self.path)

    # -- internals -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _engine(self, name: str, what: str) -> Iterator[None]:
        """Translate qdrant-edge's bare exceptions into the project's errors."""
        try:
            yield
        except DmwanError:  # ours, e.g. an Interrupted raised by a signal handler
            raise
        except Exception as e:  # qdrant-edge raises plain Exception for everything
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "WouldBlock" in msg:
                # The shard's WAL is locked by a process that bypassed the folder lock (we hold
                # that one), e.g. a tool using qdrant-edge directly: its pid is unknown.
                raise in_use_error(self.path, None) from None
            if disk.is_disk_full_message(msg):
                raise DiskFullError(
                    f"disk full: the embedded store {self.path} could not finish {what} in "
                    f"collection '{name}' (no space left on the device)"
                ) from None
            raise StoreError(
                f"embedded store failed {what} in collection '{name}': {msg}"
            ) from None

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise StoreError(f"store {self.path} is opened read-only")

    def _ensure_space(self, data_bytes: int, what: str, growth: int = 0) -> None:
        """Refuse a write that could exhaust the disk (the engine would die of SIGBUS);
        ``growth`` is what the engine may allocate besides the data (see `disk.open_growth`)."""
        need = disk.space_needed(data_bytes) + growth
        free = disk.free_bytes(self.path)
        if free < need:
            raise DiskFullError(
                f"disk full: {disk.mb(free)} free under {self.path}, {what} needs at least "
                f"{disk.mb(need)}"
            )

    def _read_manifest(self, name: str) -> dict[str, Any]:
        return read_manifest(self.path / name, name, str(self._not_found(name)))

    def _shard_dir(self, name: str) -> Path:
        """Where the engine opens the shard: in place, or in the private copy."""
        if self._copy is None:
            return self.path / name / SHARD_DIR
        return self._copy.shard_dir(name)

    def _shard(self, name: str) -> qe.EdgeShard:
        self._manifest(name)
        shard = self._shards.get(name)
        if shard is None:
            if self._copy is None:
                growth = disk.open_growth(self.path / name / SHARD_DIR)
                self._ensure_space(0, "opening a collection", growth)
            with self._engine(name, "opening the shard"):
                shard = qe.EdgeShard.load(str(self._shard_dir(name)))
            self._shards[name] = shard
        return shard

    def _new_shard(self, name: str, staging: Path, manifest: dict[str, Any]) -> qe.EdgeShard:
        with self._engine(name, "creating the shard"):
            shard = qe.EdgeShard.create(
                str(staging / SHARD_DIR),
                edge_config(manifest["dim"], manifest["token_dim"], manifest_index(manifest)),
            )
            for field in INDEXED_FIELDS:
                shard.update(qe.UpdateOperation.create_field_index(field, field_index_params()))
        return shard

    def _write_to(self, shard: qe.EdgeShard, name: str, rows: list[Row]) -> None:
        """Upsert one batch of checked rows into ``shard``, checking the free space first."""
        data = sum(v.nbytes + t.nbytes + len(json.dumps(p)) for _, v, t, p in rows)
        self._ensure_space(data, f"writing {len(rows)} points")
        # Python lists, not numpy arrays: qdrant-edge 0.9 accepts arrays but reads them
        # element by element, 2.8x slower to build than tolist() (measured, 512 + 16x128).
        batch = [
            qe.Point(pid, {GLOBAL: vec.tolist(), TOKENS: tok.tolist()}, payload)
            for pid, vec, tok, payload in rows
        ]
        with self._engine(name, "upserting points"):
            shard.update(qe.UpdateOperation.upsert_points(batch))

    # -- engine hooks --------------------------------------------------------------------------

    def _exists(self, name: str) -> bool:
        return folders.check_folder(self.path / name, name)

    def _create(self, name: str, spec: CollectionSpec) -> None:
        manifest = new_manifest(name, spec.dim, spec.token_dim, spec.model, spec.index)
        self._ensure_space(0, "creating a collection")
        try:
            with folders.staging(self.path) as built:
                shard = self._new_shard(name, built, manifest)
                with self._engine(name, "creating the shard"):
                    shard.flush()
                    shard.close()
                write_manifest(built, manifest)
                folders.move_into_place(built, self.path / name)
        except OSError as e:
            raise StoreError(f"cannot create collection '{name}' in {self.path}: {e.strerror}") from None
        self._manifests[name] = manifest

    def _drop(self, name: str) -> None:
        self._manifest(name)  # a folder with an unreadable manifest is damaged, not deleted
        shard = self._shards.pop(name, None)
        if shard is not None:
            with self._engine(name, "closing the shard"):
                shard.close()
        folders.trash(self.path / name)

    def _engine_info(self, name: str) -> EngineInfo:
        with self._engine(name, "reading shard info"):
            info = self._shard(name).info()
        return EngineInfo(int(info.points_count), int(info.indexed_vectors_count), int(info.segments_count), "green")

    def _write(self, name: str, rows: list[Row]) -> None:
        self._write_to(self._shard(name), name, rows)

    def _fetch(self, name: str, ids: list[str], vectors: bool) -> list[Any]:
        shard = self._shard(name)
        with self._engine(name, "reading vectors" if vectors else "retrieving points"):
            return list(shard.retrieve(cast("list[qe.PointId]", ids), with_payload=True, with_vector=vectors))

    def _scroll(self, name: str, offset: Any, with_payload: bool | list[str]) -> tuple[list[Any], Any]:
        shard = self._shard(name)
        with self._engine(name, "scrolling points"):
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=_PAGE, with_payload=with_payload, with_vector=False)
            )
        return list(records), offset

    def _delete(self, name: str, ids: list[str]) -> None:
        shard = self._shard(name)
        if ids:
            self._ensure_space(64 * len(ids), "deleting points")
            with self._engine(name, "deleting points"):
                shard.update(qe.UpdateOperation.delete_points(cast("list[qe.PointId]", ids)))

    def _count(self, name: str, key: str | None) -> int:
        flt = None if key is None else qe.Filter(must_not=[qe.IsEmptyCondition(key)])
        with self._engine(name, "counting points"):
            return int(self._shard(name).count(qe.CountRequest(exact=True, filter=flt)))

    def _query(self, name: str, queries: list[tuple[np.ndarray, np.ndarray | None]], plan: SearchPlan) -> list[list[Any]]:
        flt = engine_filter(plan.conditions, qe, qe.RangeFloat)
        params = qe.SearchParams(hnsw_ef=plan.ef)
        reqs = []
        for vec, tok in queries:
            nearest = qe.Query.Nearest(vec.tolist(), using=GLOBAL)
            if tok is None:
                reqs.append(qe.QueryRequest(limit=plan.k, query=nearest, filter=flt, with_payload=True, params=params))
                continue
            # Quantized tokens (int8, optimized segments) score the candidates; with rescore the
            # engine scores again with the originals the top k * oversampling: all of them here.
            quant = qe.QuantizationSearchParams(rescore=plan.rescore, oversampling=plan.oversampling)
            reqs.append(qe.QueryRequest(
                limit=plan.k,
                prefetches=[qe.Prefetch(limit=plan.prefetch, query=nearest, filter=flt, params=params)],
                query=qe.Query.Nearest(tok.tolist(), using=TOKENS),
                filter=flt,
                with_payload=True,
                params=qe.SearchParams(quantization=quant),
            ))
        shard = self._shard(name)
        with self._engine(name, "searching"):
            if len(reqs) == 1:
                return [shard.query(reqs[0])]
            return list(shard.query_batch(qe.QueryBatchRequest(reqs)))

    def _release(self) -> None:
        try:
            for name, shard in list(self._shards.items()):
                with self._engine(name, "closing"):
                    shard.flush()
                    shard.close()
        finally:
            self._shards.clear()
            if self._lock is not None:
                self._lock.release()
            if self._copy is not None:
                self._copy.close()

    # -- what only the embedded store does -----------------------------------------------------

    def list_collections(self) -> list[str]:
        self._check_open()
        return sorted(p.name for p in self.path.iterdir() if folders.is_collection(p))

    def damaged_collections(self) -> dict[str, str]:
        self._check_open()
        return folders.damaged_folders(self.path)

    def ingest_record(self, name: str) -> dict[str, Any] | None:
        rec = self._manifest(name).get("ingest")
        return dict(rec) if isinstance(rec, dict) else None

    def set_ingest_record(self, name: str, record: dict[str, Any]) -> None:
        self._check_writable()
        manifest = dict(self._manifest(name), ingest=dict(record))
        self._ensure_space(0, "recording the ingest")
        try:
            write_manifest(self.path / name, manifest)
        except OSError as e:
            raise StoreError(f"cannot write the manifest of collection '{name}': {e.strerror}") from None
        self._manifests[name] = manifest

    def rebuild_collection(self, name: str, pages: Iterable[Sequence[PhotoPoint]]) -> None:
        """Write collection ``name`` anew from ``pages`` of points, in a new shard swapped in for
        the old one once complete; so a repair never writes into damaged files. The manifest
        (model and ingest records) is kept. The old shard stays readable while ``pages`` is
        consumed, so the pages may be read from it."""
        self._check_writable()
        manifest = self._manifest(name)
        self._shard(name)
        self._ensure_space(0, "rebuilding a collection")
        try:
            with folders.staging(self.path) as built:
                new = self._new_shard(name, built, manifest)
                try:
                    for page in pages:
                        rows = check_points(name, page, manifest["dim"], manifest["token_dim"])
                        for batch in self._batches(rows):
                            self._write_to(new, name, batch)
                    with self._engine(name, "flushing"):
                        new.flush()
                finally:
                    with self._engine(name, "closing"):
                        new.close()
                write_manifest(built, manifest)
                old = self._shards.pop(name)
                with contextlib.suppress(Exception):  # damaged files may fail to close cleanly
                    old.close()
                folders.swap_in(built, self.path / name)
        except OSError as e:
            raise StoreError(f"cannot rebuild collection '{name}': {e.strerror}") from None

    def begin_replacement(self, name: str, spec: CollectionSpec) -> Replacement:
        """A new shard for ``name`` built beside the old one and swapped in when complete
        (`dmwan_qdrant.store.edge_replacement.EdgeReplacement`)."""
        from dmwan_qdrant.store.edge_replacement import EdgeReplacement

        self._check_writable()
        self._shard(name)  # raises for a missing or damaged collection
        return EdgeReplacement(self, name, spec)

    def recover_collection(
        self,
        name: str,
        model: dict[str, Any] | None = None,
        verify: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Rebuild the lost manifest of collection ``name`` from its shard (see
        `dmwan_qdrant.store.folders.recover_folder`); returns the manifest written.

        ``verify`` runs once the collection opens again (e.g. `dmwan_qdrant.check.verify_model`);
        when it raises, the rebuilt manifest is taken back and the folder left as it was.
        """
        self._check_writable()
        check_name(name)
        folder = self.path / name
        if (folder / MANIFEST).is_file():
            raise StoreError(f"collection '{name}' has its manifest: nothing to recover")
        if not folder.is_dir():
            raise CollectionNotFoundError(str(self._not_found(name)))
        manifest, had_copy = folders.recover_folder(folder, name, model)
        self._manifests[name] = manifest
        if verify is not None and not had_copy:
            try:
                verify()
            except BaseException:
                self._manifests.pop(name, None)
                shard = self._shards.pop(name, None)
                if shard is not None:
                    shard.close()
                folders.undo_recovery(folder)
                raise
        return manifest

    def optimize(self, name: str) -> None:
        """Build HNSW on ``global`` and merge segments; blocks until done (minutes at 100k).
        A collection made before the payload indexes moved to disk gets them there too
        (`dmwan_qdrant.store.edge_config.field_index_params`), so that it opens in a fraction
        of the time."""
        self._check_writable()
        shard = self._shard(name)
        # The optimizer writes a new segment beside the old ones before dropping them.
        self._ensure_space(disk.allocated_bytes(self.path / name), "optimizing")
        with self._engine(name, "optimizing"):
            move_indexes_to_disk(shard)
            shard.optimize()

    def flush(self) -> None:
        """Write every open shard's segments to disk.

        Updates are already in the write-ahead log when `upsert` returns (a killed process loses
        nothing); flushing also makes reopening skip the WAL replay.
        """
        self._check_open()
        if self.read_only:
            return
        for name, shard in self._shards.items():
            with self._engine(name, "flushing"):
                shard.flush()

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.path)!r})"
