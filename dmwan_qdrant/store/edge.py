"""`EdgeStore`: the embedded default, one qdrant-edge shard per collection in a local folder.

Layout::

    <path>/.lock                         exclusive flock while a process has the store open
    <path>/<collection>/collection.json  manifest: dims, the model record, the ingest record
    <path>/<collection>/shard/           the qdrant-edge shard (segments, WAL, edge_config.json)
    <path>/<collection>/shard/dmwan-collection.json   a copy of the manifest, kept with the shard

A collection is built complete in ``<path>/.creating-<uuid>/`` and renamed into place, so a crash
in `create_collection` leaves only a dot-folder that the next writer clears, never a half-made
collection. Deletion renames the folder away first for the same reason. A collection folder whose
manifest is gone (deleted by hand, lost in a copy) is never removed or overwritten: it is reported
as damaged, and `recover_collection` rebuilds the manifest from the copy inside the shard.

Every write first checks the free space on the store's disk (`dmwan_qdrant.store.disk`): the
engine's memory-mapped files would otherwise kill the process with SIGBUS on a full disk. A store
opened ``read_only`` that cannot be opened in place (read-only medium, no write permission, full
disk) is searched through a private sparse copy in the temp folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import qdrant_edge as qe

from dmwan_qdrant.errors import (
    CollectionNotFoundError,
    DmwanError,
    DiskFullError,
    StoreDamagedError,
    StoreError,
)
from dmwan_qdrant.store.base import (
    GLOBAL,
    INDEXED_FIELDS,
    TOKENS,
    CollectionInfo,
    CollectionSpec,
    Hit,
    PhotoPoint,
    Store,
    StoredPoint,
    stored_points,
    canonical_ids,
    check_name,
    check_points,
    check_queries,
    check_search,
    index_state,
)
from dmwan_qdrant.store import disk
from dmwan_qdrant.store.edge_config import edge_config
from dmwan_qdrant.store.filters import (
    Condition,
    Match,
    MatchAny,
    Prefix,
    Range,
    check_filter,
)
from dmwan_qdrant.store.lock import FolderLock, in_use_error

from dmwan_qdrant.store.manifest import (
    MANIFEST,
    SHARD_DIR,
    SHARD_MANIFEST,
    damaged_message,
    manifest_index,
    new_manifest,
    read_manifest,
    recover_manifest,
    write_manifest,
)
from dmwan_qdrant.store.readonly import PrivateCopy

_DELETING = ".deleting-"
_CREATING = ".creating-"
_REPLACED = ".replaced-"  # + 32 hex digits + "-" + name: the old folder during a rebuild swap
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
        self.batch_size = max(1, int(batch_size))
        self.read_only = bool(read_only)
        self.notice: str | None = None
        """One line on how the store was opened, when not in place (for the CLI to show)."""
        self._copy: PrivateCopy | None = None  # where shards are opened, when not in place
        self._lock: FolderLock | None = None
        self._shards: dict[str, qe.EdgeShard] = {}
        self._manifests: dict[str, dict[str, Any]] = {}
        self._closed = False
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
            self._clear_leftovers()

    def _clear_leftovers(self) -> None:
        """Finish what a killed process left half done: a delete, a create, a rebuild swap."""
        for old in self.path.glob(_REPLACED + "*"):
            name = old.name[len(_REPLACED) + 33 :]
            if (self.path / name).exists():  # the swap finished: the old folder is garbage
                shutil.rmtree(old, ignore_errors=True)
            elif name:  # killed between the two renames: the old collection comes back
                os.rename(old, self.path / name)
        for pattern in (_DELETING + "*", _CREATING + "*"):
            for leftover in self.path.glob(pattern):
                shutil.rmtree(leftover, ignore_errors=True)

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

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

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

    def _manifest(self, name: str) -> dict[str, Any]:
        self._check_open()
        check_name(name)
        if name not in self._manifests:
            self._manifests[name] = read_manifest(
                self.path / name, name, self._not_found_message(name)
            )
        return self._manifests[name]

    def _not_found_message(self, name: str) -> str:
        names = ", ".join(self.list_collections()) or "none"
        return f"no collection named '{name}' (collections: {names})"

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

    # -- collections ---------------------------------------------------------------------------

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        self._check_writable()
        check_name(name)
        folder = self.path / name
        if self.collection_exists(name):  # raises for a folder that lost its manifest
            raise StoreError(f"collection '{name}' already exists")
        if spec.dim < 1 or spec.token_dim < 1:
            raise StoreError(f"invalid dims {spec.dim}/{spec.token_dim} for collection '{name}'")
        manifest = new_manifest(name, spec.dim, spec.token_dim, spec.model, spec.index)
        self._ensure_space(0, "creating a collection")
        # Built complete under a dot-name, then renamed into place: a crash leaves a leftover
        # the next writer clears, never a collection folder without its manifest.
        staging = self.path / f"{_CREATING}{uuid.uuid4().hex}"
        try:
            shard = self._new_shard(name, staging, manifest)
            with self._engine(name, "creating the shard"):
                shard.flush()
                shard.close()
            write_manifest(staging, manifest)
            with contextlib.suppress(FileNotFoundError):
                folder.rmdir()  # an empty folder of that name holds nothing to keep
            os.rename(staging, folder)
        except OSError as e:
            raise StoreError(f"cannot create collection '{name}' in {self.path}: {e.strerror}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._manifests[name] = manifest

    def _new_shard(self, name: str, staging: Path, manifest: dict[str, Any]) -> qe.EdgeShard:
        with self._engine(name, "creating the shard"):
            shard = qe.EdgeShard.create(
                str(staging / SHARD_DIR),
                edge_config(manifest["dim"], manifest["token_dim"], manifest_index(manifest)),
            )
            for field in INDEXED_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                )
        return shard

    def rebuild_collection(self, name: str, pages: Iterable[Sequence[PhotoPoint]]) -> None:
        """Write collection ``name`` anew from ``pages`` of points, in a new shard swapped in for
        the old one once complete; so a repair never writes into damaged files. The manifest
        (model and ingest records) is kept. The old shard stays readable while ``pages`` is
        consumed, so the pages may be read from it."""
        self._check_writable()
        manifest = self._manifest(name)
        self._shard(name)
        self._ensure_space(0, "rebuilding a collection")
        staging = self.path / f"{_CREATING}{uuid.uuid4().hex}"
        try:
            new = self._new_shard(name, staging, manifest)
            try:
                for page in pages:
                    self._write(new, name, check_points(name, page, manifest["dim"], manifest["token_dim"]))
                with self._engine(name, "flushing"):
                    new.flush()
            finally:
                with self._engine(name, "closing"):
                    new.close()
            write_manifest(staging, manifest)
            old = self._shards.pop(name)
            with contextlib.suppress(Exception):  # damaged files may fail to close cleanly
                old.close()
            replaced = self.path / f"{_REPLACED}{uuid.uuid4().hex}-{name}"
            os.rename(self.path / name, replaced)
            os.rename(staging, self.path / name)
            shutil.rmtree(replaced, ignore_errors=True)
        except OSError as e:
            raise StoreError(f"cannot rebuild collection '{name}': {e.strerror}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def collection_exists(self, name: str) -> bool:
        """Whether collection ``name`` exists; a folder of that name that lost its manifest but
        holds a shard raises `StoreDamagedError`, so that no caller takes it for free."""
        self._check_open()
        check_name(name)
        folder = self.path / name
        if (folder / MANIFEST).is_file():
            return True
        if (folder / SHARD_DIR).exists():
            raise StoreDamagedError(damaged_message(folder, name, "has no manifest (collection.json)"))
        return False

    def list_collections(self) -> list[str]:
        self._check_open()
        return sorted(
            p.name
            for p in self.path.iterdir()
            if not p.name.startswith(".") and (p / MANIFEST).is_file()
        )

    def damaged_collections(self) -> dict[str, str]:
        self._check_open()
        out: dict[str, str] = {}
        for p in sorted(self.path.iterdir()):
            if p.name.startswith(".") or not p.is_dir() or (p / MANIFEST).is_file():
                continue
            if (p / SHARD_DIR).exists():
                out[p.name] = damaged_message(p, p.name, "has no manifest (collection.json)")
        return out

    def recover_collection(
        self,
        name: str,
        model: dict[str, Any] | None = None,
        verify: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Rebuild the lost manifest of collection ``name`` from its shard (see
        `dmwan_qdrant.store.manifest.recover_manifest`); returns the manifest written.

        ``verify`` runs once the collection opens again (e.g. `dmwan_qdrant.check.verify_model`);
        when it raises, the rebuilt manifest is taken back and the folder left as it was.
        """
        self._check_writable()
        check_name(name)
        folder = self.path / name
        if (folder / MANIFEST).is_file():
            raise StoreError(f"collection '{name}' has its manifest: nothing to recover")
        if not folder.is_dir():
            raise CollectionNotFoundError(self._not_found_message(name))
        had_copy = (folder / SHARD_DIR / SHARD_MANIFEST).is_file()
        manifest = recover_manifest(folder, name, model)
        self._manifests[name] = manifest
        if verify is not None and not had_copy:
            try:
                verify()
            except BaseException:
                self._manifests.pop(name, None)
                shard = self._shards.pop(name, None)
                if shard is not None:
                    shard.close()
                for f in (folder / MANIFEST, folder / SHARD_DIR / SHARD_MANIFEST):
                    f.unlink(missing_ok=True)
                raise
        return manifest

    def delete_collection(self, name: str) -> None:
        self._check_writable()
        self._manifest(name)
        shard = self._shards.pop(name, None)
        self._manifests.pop(name, None)
        if shard is not None:
            with self._engine(name, "closing the shard"):
                shard.close()
        # Rename first: the collection disappears at once, and an interrupted rmtree leaves a
        # folder the next open clears, never a half-deleted collection.
        trash = self.path / f"{_DELETING}{uuid.uuid4().hex}"
        os.replace(self.path / name, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def collection_info(self, name: str) -> CollectionInfo:
        manifest = self._manifest(name)
        with self._engine(name, "reading shard info"):
            info = self._shard(name).info()
        return CollectionInfo(
            name=name,
            backend=self.backend,
            points=int(info.points_count),
            dim=int(manifest["dim"]),
            token_dim=int(manifest["token_dim"]),
            model=dict(manifest["model"]),
            indexed_vectors=int(info.indexed_vectors_count),
            index_state=index_state(int(info.points_count), int(info.indexed_vectors_count)),
            segments=int(info.segments_count),
            status="green",
            index=manifest_index(manifest),
        )

    def get_model_record(self, name: str) -> dict[str, Any]:
        return dict(self._manifest(name)["model"])

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

    # -- points --------------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[PhotoPoint]) -> None:
        self._check_writable()
        m = self._manifest(name)
        rows = check_points(name, points, m["dim"], m["token_dim"])
        self._write(self._shard(name), name, rows)

    def _write(self, shard: qe.EdgeShard, name: str, rows: list[tuple[str, np.ndarray, np.ndarray, dict[str, Any]]]) -> None:
        """Upsert checked rows in batches, checking the free space before each one."""
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            data = sum(v.nbytes + t.nbytes + len(json.dumps(p)) for _, v, t, p in chunk)
            self._ensure_space(data, f"writing {len(chunk)} points")
            # Python lists, not numpy arrays: qdrant-edge 0.9 accepts arrays but reads them
            # element by element, 2.8x slower to build than tolist() (measured, 512 + 16x128).
            batch = [
                qe.Point(pid, {GLOBAL: vec.tolist(), TOKENS: tok.tolist()}, payload)
                for pid, vec, tok, payload in chunk
            ]
            with self._engine(name, "upserting points"):
                shard.update(qe.UpdateOperation.upsert_points(batch))

    def retrieve(self, name: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        wanted = canonical_ids(ids)
        if not wanted:
            self._manifest(name)
            return []
        with self._engine(name, "retrieving points"):
            records = self._shard(name).retrieve(
                cast("list[qe.PointId]", wanted), with_payload=True, with_vector=False
            )
        found = {str(r.id): dict(r.payload or {}) for r in records}
        return [found[i] for i in wanted if i in found]

    def read_points(self, name: str, ids: Sequence[str]) -> list[StoredPoint]:
        wanted = canonical_ids(ids)
        shard = self._shard(name)
        if not wanted:
            return []
        with self._engine(name, "reading vectors"):
            records = shard.retrieve(
                cast("list[qe.PointId]", wanted), with_payload=True, with_vector=True
            )
        return stored_points(records, wanted)

    def scroll_payloads(
        self, name: str, fields: list[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        shard = self._shard(name)
        with_payload: bool | list[str] = True if fields is None else (list(fields) or False)
        offset = None
        while True:
            with self._engine(name, "scrolling points"):
                records, offset = shard.scroll(
                    qe.ScrollRequest(
                        offset=offset, limit=_PAGE, with_payload=with_payload, with_vector=False
                    )
                )
            for r in records:
                yield str(r.id), dict(r.payload or {})
            if offset is None:
                return

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        self._check_writable()
        wanted = canonical_ids(ids)
        shard = self._shard(name)
        if wanted:
            self._ensure_space(64 * len(wanted), "deleting points")
            with self._engine(name, "deleting points"):
                shard.update(qe.UpdateOperation.delete_points(cast("list[qe.PointId]", wanted)))

    def count(self, name: str) -> int:
        with self._engine(name, "counting points"):
            return int(self._shard(name).count(qe.CountRequest(exact=True)))

    def count_with_key(self, name: str, key: str) -> int:
        flt = qe.Filter(must_not=[qe.IsEmptyCondition(key)])
        with self._engine(name, "counting points"):
            return int(self._shard(name).count(qe.CountRequest(exact=True, filter=flt)))

    # -- search --------------------------------------------------------------------------------

    def _request(
        self,
        vec: np.ndarray,
        tok: np.ndarray | None,
        k: int,
        prefetch: int,
        flt: qe.Filter | None,
        params: qe.SearchParams,
        rescore: bool,
    ) -> qe.QueryRequest:
        nearest = qe.Query.Nearest(vec.tolist(), using=GLOBAL)
        if tok is None:
            return qe.QueryRequest(limit=k, query=nearest, filter=flt, with_payload=True, params=params)
        # Quantized tokens (int8, optimized segments) score the candidates; with rescore the
        # engine scores again with the originals the top k * oversampling: all of them here.
        quant = qe.QuantizationSearchParams(rescore=rescore, oversampling=prefetch / k)
        return qe.QueryRequest(
            limit=k,
            prefetches=[qe.Prefetch(limit=prefetch, query=nearest, filter=flt, params=params)],
            query=qe.Query.Nearest(tok.tolist(), using=TOKENS),
            filter=flt,
            with_payload=True,
            params=qe.SearchParams(quantization=quant),
        )

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray | Sequence[np.ndarray],
        k: int,
        filter: Mapping[str, Any] | None = None,
        rerank_tokens: Sequence[np.ndarray] | None = None,
        prefetch: int = 100,
        hnsw_ef: int | None = None,
    ) -> list[list[Hit]]:
        m = self._manifest(name)
        index = manifest_index(m)
        k, prefetch, ef = check_search(k, prefetch, hnsw_ef, index.hnsw_ef)
        q, toks = check_queries(name, vectors, rerank_tokens, m["dim"], m["token_dim"])
        conds = check_filter(filter)
        flt = qe.Filter(must=[_condition(c) for c in conds]) if conds else None
        params = qe.SearchParams(hnsw_ef=ef)
        reqs = [
            self._request(q[i], None if toks is None else toks[i], k, prefetch, flt, params, index.rescore)
            for i in range(len(q))
        ]
        shard = self._shard(name)
        with self._engine(name, "searching"):
            if len(reqs) == 1:
                results = [shard.query(reqs[0])]
            else:
                results = shard.query_batch(qe.QueryBatchRequest(reqs))
        return [
            [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in res] for res in results
        ]

    # -- maintenance ---------------------------------------------------------------------------

    def optimize(self, name: str) -> None:
        """Build HNSW on ``global`` and merge segments; blocks until done (minutes at 100k)."""
        self._check_writable()
        shard = self._shard(name)
        # The optimizer writes a new segment beside the old ones before dropping them.
        self._ensure_space(disk.allocated_bytes(self.path / name), "optimizing")
        with self._engine(name, "optimizing"):
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

    def close(self) -> None:
        if self._closed:
            return
        try:
            for name, shard in list(self._shards.items()):
                with self._engine(name, "closing"):
                    shard.flush()
                    shard.close()
        finally:
            self._shards.clear()
            self._closed = True
            if self._lock is not None:
                self._lock.release()
            if self._copy is not None:
                self._copy.close()

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.path)!r})"


def _condition(c: Condition) -> qe.FieldCondition:
    """A checked filter condition (`dmwan_qdrant.store.filters`) as qdrant-edge's."""
    if isinstance(c, Match):
        return qe.FieldCondition(c.key, match=qe.MatchValue(c.value))
    if isinstance(c, MatchAny):
        return qe.FieldCondition(c.key, match=qe.MatchAny(list(c.values)))
    if isinstance(c, Range):
        return qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt))
    if isinstance(c, Prefix):
        return qe.FieldCondition(c.key, match=qe.MatchPrefix(c.prefix))
    raise TypeError(f"not a filter condition: {c!r}")
