"""`Result`: one retrieved photo, as every front (CLI, server, client) hands it on.

Free of torch, so that a client of a running server can build results without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    """One retrieved photo.

    Attributes:
        rank: 1 for the best match.
        score: cosine of the global embeddings, or the fused global and local-token score when
            re-ranked (same scale: `dmwan_qdrant.search.reranking`).
        path: the photo file.
        label: the stored label (folder name when ingested with it), or None.
        id: the point id (a UUID derived from the file's content hash).
        payload: everything stored with the point.
    """

    rank: int
    score: float
    path: str
    label: str | None
    id: str
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "path": self.path,
            "label": self.label,
            "id": self.id,
            "width": self.payload.get("width"),
            "height": self.payload.get("height"),
        }
