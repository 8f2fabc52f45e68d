"""Exact-match payload filters, checked once for every backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dmwan_qdrant.errors import UsageError


def check_filter(filter: Mapping[str, Any] | None) -> list[tuple[str, str | int | bool]]:
    """``(key, value)`` conditions, all of which a point must match; ``[]`` for no filter.

    Values must be strings, integers or booleans: the types Qdrant's exact ``match`` accepts.
    Floats would silently match nothing there, so they are refused.
    """
    if not filter:
        return []
    out: list[tuple[str, str | int | bool]] = []
    for key, value in filter.items():
        if not isinstance(key, str) or not key:
            raise UsageError(f"filter keys must be non-empty strings, got {key!r}")
        if not isinstance(value, (str, int, bool)):
            raise UsageError(
                f"filter value for {key!r} must be a string, integer or boolean, got {value!r}"
            )
        out.append((key, value))
    return out
