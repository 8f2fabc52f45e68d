"""What a running ingest reports after each batch, and what a finished one did."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class IngestProgress:
    """Where a running ingest stands; passed to the ``progress`` callback after each batch."""

    done: int  # files handled so far (unchanged ones included)
    total: int  # image files found
    decoded: int  # files read and decoded so far
    failed: int
    elapsed: float  # seconds since the start

    @property
    def images_per_second(self) -> float:
        """Decoded-and-embedded images per second so far."""
        return self.decoded / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class IngestReport:
    """What an ingest did.

    Attributes:
        found: image files found under the given paths.
        added: new points (content not in the collection before).
        updated: points rewritten: a renamed or moved file, or a touched file (new mtime).
        unchanged: files skipped because path, size and mtime matched the stored point.
        duplicates: files whose content is already stored under another existing path.
        pruned: points deleted: stale versions of changed files, and (with ``prune``) files gone.
        missing: points under the given paths whose file is gone (kept: ``prune`` drops them).
        failed: ``(path, reason)`` for every file that could not be read.
        decoded: files read, hashed and decoded in this run.
        seconds: wall time of the run.
        export: what ``export`` wrote (`dmwan_qdrant.ingest.export.ExportSummary` as a dict), or None.
    """

    found: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    pruned: int = 0
    missing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    decoded: int = 0
    seconds: float = 0.0
    export: dict[str, Any] | None = None

    @property
    def images_per_second(self) -> float:
        """Files decoded and embedded per second of the whole run."""
        return self.decoded / self.seconds if self.seconds > 0 else 0.0

    def handled(self, skipped: int) -> int:
        """Files dealt with so far, given the ``skipped`` count the plan started with."""
        return skipped + self.decoded + len(self.failed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (``failed`` as a list of ``{"path", "reason"}``)."""
        d = asdict(self)
        d["failed"] = [{"path": p, "reason": r} for p, r in self.failed]
        d["images_per_second"] = round(self.images_per_second, 2)
        d["seconds"] = round(self.seconds, 3)
        return d
