"""Ingest: embed a photo folder into a collection, incrementally, idempotently, robustly.

1. Walk the paths (recursively, sorted, hidden entries skipped, include/exclude globs applied:
   see `dmwan_qdrant.ingest.selection`) and ``stat`` each image file. A file whose path, size and mtime
   are stored is *unchanged*: neither read nor decoded (`plan`).
2. The other files are hashed (SHA-256), decoded and preprocessed (`decode`): in DataLoader
   workers that overlap the encoder (`run`), or in Ray Data CPU tasks feeding an actor pool of
   encoders (`ray_pipeline`). A bad file comes back as an error marker and never stops a run.
3. Point ids are UUIDs made from content hashes, so a duplicate or a renamed file maps onto the
   point already there: new content is embedded and upserted, a renamed file re-points the stored
   point, an exact duplicate of a file still in place adds nothing (`write`).
4. At the end, stale versions of changed files are deleted, and with ``prune`` the points under
   the given paths whose file is gone (points the globs exclude are left alone). With ``export``
   the points of the files found are then written to a file (`dmwan_qdrant.ingest.export`).

Crash safety: a point's vectors and payload are written in one upsert, so a point that exists is
complete and the *unchanged* skip (which trusts stored payloads) only ever trusts whole points.
Nothing else is recorded about a run, so a run killed at any moment and started again converges
to the same collection: ids are content hashes (upserts are idempotent) and stale versions left
by the kill are recognised as such on the next run.
"""

from __future__ import annotations

from ..lazy import lazy_attributes
from ..point_ids import point_id, sha256_file
from .selection import walk_images
from .report import IngestProgress, IngestReport
from .run import default_workers, ingest

__all__ = [
    "IngestProgress",
    "IngestReport",
    "default_workers",
    "ingest",
    "ingest_ray",
    "point_id",
    "sha256_file",
    "walk_images",
]


# Ray is imported only when the Ray path is asked for.
__getattr__, __dir__ = lazy_attributes(__name__, {"ingest_ray": "ray_pipeline"})
