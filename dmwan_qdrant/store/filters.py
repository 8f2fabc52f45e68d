"""Payload filters: one structure every backend accepts, checked here once for all of them.

A filter is a mapping ``{key: condition}``; a point must match every condition (AND). Each
condition is one of:

- ``value`` (a string or integer): exact match, e.g. ``{"label": "shoe"}``;
- ``[v1, v2, ...]`` (non-empty; all strings or all integers): any of the values, e.g.
  ``{"label": ["shoe", "boot"]}`` (Qdrant ``MatchAny``);
- ``{"gte": a, "gt": b, "lte": c, "lt": d}`` (any of the four, numbers): a numeric range,
  e.g. ``{"width": {"gte": 640, "lte": 1920}}`` (Qdrant ``Range``);
- ``{"prefix": "..."}`` (a non-empty string): a keyword starting with it, e.g.
  ``{"path": {"prefix": "/photos/shoes/"}}`` (Qdrant ``MatchPrefix``).

Floats are refused as exact values (Qdrant's ``match`` would silently match nothing); in ranges
they are fine. Booleans are refused everywhere: qdrant-edge 0.9 turns ``MatchValue(True)`` into
the integer 1 (matching ``n == 1``, never a boolean payload), so no backend could answer alike.
Keys may be dotted paths into nested payloads (``exif.camera``).
`check_filter` turns a filter into `Condition`s, which `engine_filter` translates for either
engine. The CLI syntax that builds this structure is
`dmwan_qdrant.search.parse_filters`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dmwan_qdrant.errors import UsageError

RANGE_OPS = ("gte", "gt", "lte", "lt")
"""Bounds of a range condition."""

SHAPES = 'value, [v1, v2, ...], {"gte"/"gt"/"lte"/"lt": number} or {"prefix": "text"}'
"""How the filter structure is described in error messages."""


@dataclass(frozen=True)
class Match:
    """``key`` equals ``value`` exactly."""

    key: str
    value: str | int


@dataclass(frozen=True)
class MatchAny:
    """``key`` equals one of ``values`` (all strings or all integers)."""

    key: str
    values: tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True)
class Range:
    """``key`` is a number within the given bounds (None: unbounded on that side)."""

    key: str
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class Prefix:
    """``key`` is a keyword starting with ``prefix``."""

    key: str
    prefix: str


Condition = Match | MatchAny | Range | Prefix
"""One checked filter condition."""


def _bad(key: str, why: str) -> UsageError:
    return UsageError(f"filter condition for {key!r} {why} (a condition is {SHAPES})")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _any_of(key: str, values: list[Any] | tuple[Any, ...]) -> MatchAny:
    if not values:
        raise _bad(key, "is an empty list")
    if all(isinstance(v, str) for v in values):
        return MatchAny(key, tuple(values))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return MatchAny(key, tuple(int(v) for v in values))
    raise _bad(key, f"must list only strings or only integers, got {list(values)!r}")


def _object(key: str, value: Mapping[Any, Any]) -> Range | Prefix:
    ops = set(value)
    if ops == {"prefix"}:
        prefix = value["prefix"]
        if not isinstance(prefix, str) or not prefix:
            raise _bad(key, f"needs a non-empty string prefix, got {prefix!r}")
        return Prefix(key, prefix)
    if not ops or not ops <= set(RANGE_OPS):
        raise _bad(key, f"has unknown or mixed operators {sorted(map(str, ops))}")
    for op in ops:
        if not _is_number(value[op]):
            raise _bad(key, f"needs a number for {op!r}, got {value[op]!r}")
    return Range(key, **{op: value[op] for op in ops})


def check_condition(key: Any, value: Any) -> Condition:
    """The `Condition` for ``{key: value}``; `UsageError` (one line) for a bad shape."""
    if not isinstance(key, str) or not key:
        raise UsageError(f"filter keys must be non-empty strings, got {key!r}")
    if isinstance(value, bool):
        raise _bad(
            key,
            f"is a boolean ({value!r}), which the embedded engine cannot match: "
            "store the flag as a string or an integer",
        )
    if isinstance(value, (str, int)):
        return Match(key, value)
    if isinstance(value, (list, tuple)):
        return _any_of(key, value)
    if isinstance(value, Mapping):
        return _object(key, value)
    raise _bad(key, f"must be a string, integer, list or object, got {value!r}")


def check_filter(filter: Mapping[str, Any] | None) -> list[Condition]:
    """The conditions of ``filter`` (see the module docstring), all of which a point must match;
    ``[]`` for no filter.

    Raises:
        UsageError: a key that is not a non-empty string, or a condition of another shape
            (one line).
    """
    if not filter:
        return []
    if not isinstance(filter, Mapping):
        raise UsageError(f"a filter is an object {{key: condition}}, got {filter!r}")
    return [check_condition(key, value) for key, value in filter.items()]


def engine_filter(conditions: Sequence[Condition], models: Any, range_type: Any) -> Any:
    """Checked conditions as an engine's ``Filter`` (None for none).

    ``models`` is the engine's model module, ``qdrant_edge`` or ``qdrant_client.models``: both
    name the classes alike and take the same keywords, except the float range, ``range_type``
    (``qdrant_edge.RangeFloat``, ``qdrant_client.models.Range``).
    """
    if not conditions:
        return None
    return models.Filter(must=[_field_condition(c, models, range_type) for c in conditions])


def _field_condition(c: Condition, models: Any, range_type: Any) -> Any:
    if isinstance(c, Match):
        return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
    if isinstance(c, MatchAny):
        return models.FieldCondition(key=c.key, match=models.MatchAny(any=list(c.values)))
    if isinstance(c, Range):
        return models.FieldCondition(key=c.key, range=range_type(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt))
    if isinstance(c, Prefix):
        return models.FieldCondition(key=c.key, match=models.MatchPrefix(prefix=c.prefix))
    raise TypeError(f"not a filter condition: {c!r}")
