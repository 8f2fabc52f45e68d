"""How a collection is indexed and stored: `IndexSettings`, chosen at creation and kept with it.

The global vector gets an HNSW graph (``hnsw_m`` edges per node, built with ``ef_construct``
candidates by `Store.optimize`) and is searched with ``hnsw_ef`` candidates unless a query asks
for another ``ef``. The token multivector is only read to re-rank the candidates the global
vector found, so it is kept compact:

- ``"int8"`` (the default for new collections): Qdrant's scalar int8 quantization, a quarter of
  the float32 tokens, kept in memory; the originals are stored as float16 on disk (not held in
  memory). With ``rescore`` (the default) the re-rank scores every candidate again with the
  originals, read from disk: on the tiny model's embeddings the int8 scores alone changed 6-8%
  of the re-ranked top 10 against float32, the rescored ones 0.5% (BENCHMARKS.md). Segments
  written since the last `Store.optimize` have no quantized copy yet and score with the
  originals.
- ``"float16"``: half-precision tokens, no quantization.
- ``"float32"``: full-precision tokens in memory; the layout of collections made before
  settings were recorded.

The figures behind the defaults are in BENCHMARKS.md, "Scale: 100k and 1M points".
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

from dmwan_qdrant.errors import UsageError

TOKEN_STORAGE = ("int8", "float16", "float32")
"""Ways to store the token multivector (see the module docstring)."""

INT8_QUANTILE = 0.99
"""Quantile of the token values that int8 quantization maps to the int8 range; the rarest 1%
are clipped rather than stretching the scale for everyone else (Qdrant's documented choice)."""


def check_positive(what: str, value: Any) -> int:
    """``value`` as a positive int, else `UsageError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_ef(ef: int | None) -> int | None:
    """A query's ``ef`` (None: the collection's ``hnsw_ef``), else `UsageError`."""
    return None if ef is None else check_positive("ef", ef)


@dataclass(frozen=True)
class IndexSettings:
    """HNSW and storage settings of a collection (see the module docstring).

    Attributes:
        hnsw_m: edges per node of the global vector's HNSW graph.
        ef_construct: candidates while building the graph.
        hnsw_ef: candidates while searching it, unless a query gives its own ``ef``.
        tokens: storage of the token multivector, one of `TOKEN_STORAGE`.
        rescore: with int8 tokens, re-score the re-rank's candidates with the original tokens
            (False: rank by the int8 scores alone, no disk reads, less exact).
    """

    hnsw_m: int = 16
    ef_construct: int = 100
    hnsw_ef: int = 128
    tokens: str = "int8"
    rescore: bool = True

    def __post_init__(self) -> None:
        for field in ("hnsw_m", "ef_construct", "hnsw_ef"):
            check_positive(field, getattr(self, field))
        if not isinstance(self.rescore, bool):
            raise UsageError(f"rescore must be true or false, got {self.rescore!r}")
        if self.tokens not in TOKEN_STORAGE:
            raise UsageError(
                f"unknown token storage {self.tokens!r}: use one of {', '.join(TOKEN_STORAGE)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as the JSON kept with the collection and shown by ``collections info``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any] | None) -> IndexSettings:
        """Settings read back from a collection; None (a collection made before settings were
        recorded) gives `LEGACY`, the layout such collections really have."""
        if record is None:
            return LEGACY
        known = {k: record[k] for k in ("hnsw_m", "ef_construct", "hnsw_ef", "tokens", "rescore") if k in record}
        return cls(**known)


LEGACY = IndexSettings(hnsw_m=16, ef_construct=100, tokens="float32")
"""What collections made before settings were recorded hold: float32 tokens, m=16 and
ef_construct=100. They are searched with the current default ``hnsw_ef`` (a query-time choice)."""

