"""The ``--filter`` syntax: what a user types (``label=shoe``, ``width>=640``, ``path^=/photos/``)
as the store's filter structure (`dmwan_qdrant.store.filters`), and the check that names a
filter key no point holds.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import UsageError
from ..store import Store

#: Payload fields compared as integers in ``--filter key=value``; every other key is a string.
INTEGER_FIELDS = frozenset({"size", "width", "height", "mtime_ns"})
_FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_FILTER_SPEC = re.compile(r"^([^=<>^]*)(>=|<=|\^=|>|<|=)(.*)$", re.DOTALL)
_RANGE_OPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}
FILTER_SYNTAX = "expected key=value, key=a,b, key>=N, key<=N, key>N, key<N or key^=prefix"
"""The ``--filter`` syntax, as error messages name it."""
KEY_SAMPLE = 500
"""Payloads `check_filter_keys` reads to list the keys a collection has."""


def _filter_value(spec: str, key: str, text: str) -> str | int:
    if key not in INTEGER_FIELDS:
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"bad filter {spec!r}: {key} takes an integer ({FILTER_SYNTAX})") from None


def _parse_filter(spec: str) -> tuple[str, Any]:
    """One ``--filter`` item as ``(key, condition)`` in the structure of
    `dmwan_qdrant.store.filters`."""
    m = _FILTER_SPEC.match(spec)
    key = m.group(1).strip() if m else ""
    if not m or not _FILTER_KEY.match(key):
        raise UsageError(f"bad filter {spec!r}: {FILTER_SYNTAX}, e.g. label=shoe")
    op, text = m.group(2), m.group(3)
    if op == "^=":
        if not text:
            raise UsageError(f"bad filter {spec!r}: the prefix is empty ({FILTER_SYNTAX})")
        return key, {"prefix": text}
    if op in _RANGE_OPS:
        try:
            return key, {_RANGE_OPS[op]: int(text)}
        except ValueError:
            raise UsageError(f"bad filter {spec!r}: {key}{op} takes an integer ({FILTER_SYNTAX})") from None
    if "," in text:
        items = text.split(",")
        if not all(items):
            raise UsageError(f"bad filter {spec!r}: an empty value in the list ({FILTER_SYNTAX})")
        return key, [_filter_value(spec, key, t) for t in items]
    return key, _filter_value(spec, key, text)


def parse_filters(specs: Sequence[str]) -> dict[str, Any]:
    """``--filter`` items (ANDed) as a store filter (see `dmwan_qdrant.store.filters`).

    - ``label=shoe`` exact match; ``label=shoe,boot`` any of the comma-separated values;
    - ``width>=640``, ``width<=1920``, ``width>640``, ``width<640`` an integer range (any key:
      a range is numeric); ranges on one key merge: ``["width>=640", "width<=1920"]`` ->
      ``{"width": {"gte": 640, "lte": 1920}}``;
    - ``path^=/photos/shoes/`` a keyword prefix.

    Values of ``=`` are strings except for the integer fields (`INTEGER_FIELDS`), so that a
    folder named ``2024`` still matches its string label. E.g. ``["label=cat", "width=640"]`` ->
    ``{"label": "cat", "width": 640}``.

    Raises:
        UsageError: (one line) an item in none of these forms, an empty or odd key, a key given
            twice (other than two bounds of a range), or a non-integer where one is needed.
    """
    out: dict[str, Any] = {}
    for spec in specs:
        key, cond = _parse_filter(spec)
        old = out.get(key)
        if old is None:
            out[key] = cond
            continue
        if _is_range(old) and _is_range(cond) and not set(old) & set(cond):
            out[key] = {**old, **cond}
            continue
        raise UsageError(
            f"bad filter {spec!r}: {key} is given twice (conditions are ANDed; only range bounds "
            f"merge) ({FILTER_SYNTAX})"
        )
    return out


def _is_range(cond: Any) -> bool:
    return isinstance(cond, dict) and "prefix" not in cond


def check_filter_keys(store: Store, collection: str, filter: Mapping[str, Any] | None) -> None:
    """Raise `UsageError` if a key of ``filter`` is held by no point of ``collection`` (a typo
    such as ``lable`` would otherwise give an empty result and no reason). A known key whose
    value matches nothing, or an empty collection, is no error. Costs one count per key; the
    searches call it only when a filtered query found nothing.
    """
    for key in filter or {}:
        if store.count_with_key(collection, key) > 0:
            continue
        keys: set[str] = set()
        for _, payload in itertools.islice(store.scroll_payloads(collection), KEY_SAMPLE):
            keys.update(payload)
        if not keys:
            return
        hint = "; ingest with --label-from-folder to label photos by folder" if key == "label" else ""
        raise UsageError(
            f"collection '{collection}' has no point with payload key '{key}' "
            f"(keys: {', '.join(sorted(keys))}){hint}"
        )
